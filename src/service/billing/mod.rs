//! Bills and billing accounts (seed: healthcare-api section 3).
//!
//! Admins, and doctors for the patients in their care, write bills; the
//! patient, their doctors and admins read them. A bill says what was done
//! for a patient, so every access is audited like a medical record's, and
//! its lines are sealed at rest ([`medrelay_actors::billing`]). Changes are
//! compare-and-swap on the stored bill, each a new revision.

mod account;
pub mod claims;
mod input;
pub mod invoices;
pub mod payments;
pub mod upkeep;
pub mod webhook;

pub use account::{account, open};

use jiff::Timestamp;
use medrelay_actors::audit::{self, Action, AuditEntry};
use medrelay_actors::billing::claims::Claim;
use medrelay_actors::billing::{self, Bill, BillChange, notices};
use medrelay_actors::ids::new_id;
use medrelay_actors::patients;
use medrelay_actors::schedule::AppointmentRecord;
use medrelay_actors::stats::{self, billing::BillState};
use medrelay_actors::store::{WriteBatch, WriteError};
use medrelay_protocol::billing::{
    BillBody, BillList, BillRevisionView, BillRevisions, BillStatus, BillView, BillWritten,
};
use medrelay_protocol::{BillId, ErrorCode, Money, PatientId, Role};

use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, durably, entity, entry, refused};
use crate::service::schedule::viewer;
use crate::state::AppState;

const RETRIES: usize = 5;
const MAX_PAGE: usize = 100;
/// Most bills one list request reads while filtering, so a rare filter
/// over a large table answers in bounded time (with `next` to go on).
const MAX_SCANNED: usize = 2_000;
const MAX_REVISIONS: usize = 1_000;

fn bill_id(raw: &str) -> Result<BillId, AppError> {
    BillId::parse(raw).map_err(|e| AppError::invalid("billId", e))
}

/// The entry of an attempt on bill `id` (its patient filled in once known).
fn attempt(principal: &Principal, origin: &Origin, action: Action, id: &BillId) -> AuditEntry {
    entry(
        principal,
        origin,
        action,
        entity("Bill", Some(id.as_str()), Vec::new()),
    )
}

/// Whether the caller may write bills for `patient`: admins, and doctors
/// for the patients in their care.
fn may_bill(state: &AppState, principal: &Principal, patient: &PatientId) -> Result<(), AppError> {
    let viewer = viewer(state, principal)?;
    let allowed = match viewer.role {
        Role::Admin => true,
        Role::Doctor => viewer.may_see_patient(&state.store, patient)?,
        Role::Patient => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "bills are written by admins, and by doctors for the patients in their care".into(),
        ))
    }
}

/// Whether the caller may read `patient`'s bills: that patient, their
/// doctors, admins.
fn may_read(state: &AppState, principal: &Principal, patient: &PatientId) -> Result<(), AppError> {
    if viewer(state, principal)?.may_see_patient(&state.store, patient)? {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "those bills are not yours to see".into(),
        ))
    }
}

/// Whether the caller may read `patient`'s payments and billing account:
/// that patient and admins. Doctors read the bills of the patients in their
/// care, not what those patients paid.
fn may_see_payments(
    state: &AppState,
    principal: &Principal,
    patient: &PatientId,
) -> Result<(), AppError> {
    if principal.role == Role::Doctor {
        return Err(AppError::Forbidden(
            "payments and billing accounts are read by the patient and the clinic's staff".into(),
        ));
    }
    may_read(state, principal, patient)
}

/// Writes a bill; the server computes its total.
///
/// # Errors
/// 403; 422 naming the field (`total_mismatch` for a wrong `totalAmount`);
/// 409 for a `billId` in use.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    body: BillBody,
) -> Result<BillWritten, AppError> {
    let id = match &body.bill_id {
        Some(id) => id.clone(),
        None => BillId::parse(&new_id("bill")).expect("generated ids are valid"),
    };
    let mut this = attempt(principal, origin, Action::C, &id);
    let patient = body
        .patient_id
        .clone()
        .ok_or_else(|| AppError::invalid("patientId", "patientId is required"))?;
    this.entity.patients = vec![patient.clone()];
    if let Err(e) = may_bill(state, principal, &patient) {
        return Err(refused(state, this, e).await);
    }
    if !patients::is_live(&state.store, &patient)? {
        let e = AppError::invalid("patientId", format!("no patient {patient}"));
        return Err(refused(state, this, e).await);
    }
    if body.services.is_none() {
        return Err(AppError::invalid("services", "services is required"));
    }
    if let Some(appointment) = &body.appointment_id {
        let theirs = state
            .store
            .get::<AppointmentRecord>(appointment.as_str())?
            .is_some_and(|a| a.patient_id == patient);
        if !theirs {
            return Err(AppError::invalid(
                "appointmentId",
                format!("no appointment {appointment} of patient {patient}"),
            ));
        }
    }
    let now = Timestamp::now();
    let mut bill = Bill {
        bill_id: id.clone(),
        patient_id: patient,
        appointment_id: body.appointment_id.clone(),
        services: Vec::new(),
        insurance_claim: None,
        claim_id: None,
        total: Money::ZERO,
        paid: Money::ZERO,
        status: BillStatus::Issued,
        created_by: principal.user_id.clone(),
        created_at: now,
        updated_at: None,
        revision: 1,
    };
    input::apply(&mut bill, &body, state.settings.billing.ceiling())?;
    let mut batch = WriteBatch::new();
    batch.require_absent(medrelay_actors::store::Table::Bills, id.as_str());
    claims::follow_bill(&mut batch, state, &mut bill, None, &principal.user_id, now)?;
    billing::write(
        &mut batch,
        &state.vault,
        &bill,
        &principal.user_id,
        BillChange::Created,
    );
    // A new bill's claim is a draft: nothing is expected of the insurer yet.
    let zone = state.store.stats_zone();
    stats::tally(&mut batch, zone, None, &BillState::of(&bill, Money::ZERO));
    notices::bill_changed(&mut batch, None, &bill, now);
    audit::record(&mut batch, &this);
    match state.store.write(batch).await {
        Ok(_) => {
            tracing::info!(bill = %id, total = %bill.total, "bill written");
            Ok(BillWritten {
                bill_id: id,
                status: "Created".into(),
            })
        }
        Err(WriteError::Exists { .. }) => Err(AppError::Conflict {
            message: format!("bill {id} exists"),
            field: Some("billId".into()),
        }),
        Err(e) => Err(AppError::internal(e)),
    }
}

/// A bill, with what is paid and due.
///
/// # Errors
/// 403, 404.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_id: &str,
) -> Result<BillView, AppError> {
    let id = bill_id(raw_id)?;
    let mut this = attempt(principal, origin, Action::R, &id);
    match readable(state, principal, &mut this, &id) {
        Ok(bill) => {
            let claim = claims::of_bill(state, &bill)?;
            durably(state, &this).await?;
            Ok(view(state, bill, claim.map(|(_, c)| c).as_ref()))
        }
        Err(e) => Err(refused(state, this, e).await),
    }
}

/// A bill's revisions, oldest first, each as the bill then stood.
///
/// # Errors
/// 403, 404.
pub async fn revisions(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_id: &str,
) -> Result<BillRevisions, AppError> {
    let id = bill_id(raw_id)?;
    let mut this = attempt(principal, origin, Action::R, &id);
    this.entity.detail = Some("revisions".into());
    if let Err(e) = readable(state, principal, &mut this, &id) {
        return Err(refused(state, this, e).await);
    }
    let mut revisions = Vec::new();
    for (key, r) in billing::revisions(&state.store, &id, MAX_REVISIONS)? {
        let services =
            billing::open_revision(&state.vault, &key, &r).map_err(AppError::internal)?;
        revisions.push(BillRevisionView {
            revision: r.revision,
            at: r.at,
            by: r.by,
            change: r.change.as_str().to_owned(),
            services,
            insurance_claim: r.insurance_claim,
            total_amount: r.total,
            status: r.status,
        });
    }
    durably(state, &this).await?;
    Ok(BillRevisions {
        bill_id: id,
        currency: state.settings.billing.currency.clone(),
        revisions,
    })
}

/// Changes the fields sent, until the bill is paid or void.
///
/// # Errors
/// 403, 404; 409 once paid or void, or when the new total is below what is
/// paid; 422 naming the field.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_id: &str,
    body: BillBody,
) -> Result<BillWritten, AppError> {
    let id = bill_id(raw_id)?;
    if body.bill_id.as_ref().is_some_and(|b| *b != id) {
        return Err(AppError::invalid("billId", "a bill's id does not change"));
    }
    let this = attempt(principal, origin, Action::U, &id);
    change(state, principal, this, &id, Some(body)).await
}

/// Voids a bill (the seed's delete): it stays readable, owing nothing.
///
/// # Errors
/// 403, 404; 409 once a payment is applied; 410 when already void.
pub async fn void(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_id: &str,
) -> Result<BillWritten, AppError> {
    let id = bill_id(raw_id)?;
    let this = attempt(principal, origin, Action::D, &id);
    change(state, principal, this, &id, None).await
}

/// An update (`Some(body)`) or a void (`None`) by compare-and-swap, with its
/// audit entry in the same batch; refusals audited.
async fn change(
    state: &AppState,
    principal: &Principal,
    mut this: AuditEntry,
    id: &BillId,
    body: Option<BillBody>,
) -> Result<BillWritten, AppError> {
    for _ in 0..RETRIES {
        let found = billing::load(&state.store, &state.vault, id).map_err(AppError::internal)?;
        let Some((stored, old)) = found else {
            return Err(refused(state, this, AppError::NotFound(format!("no bill {id}"))).await);
        };
        this.entity.patients = vec![old.patient_id.clone()];
        if let Err(e) = may_bill(state, principal, &old.patient_id) {
            return Err(refused(state, this, e).await);
        }
        if let Err(e) = changeable(&old, body.is_none()) {
            return Err(refused(state, this, e).await);
        }
        let now = Timestamp::now();
        let mut new = old.clone();
        new.revision += 1;
        new.updated_at = Some(now);
        let mut batch = WriteBatch::new();
        batch.require_equal(id.as_str(), &stored);
        let claim = claims::of_bill(state, &old)?;
        // The claim is read for the figures (and a void): it must not
        // change under this write. A correction below keeps what it expects
        // of the insurer (nothing, as a draft or denied).
        if let Some((stored_claim, claim)) = &claim {
            batch.require_equal(claim.claim_id.as_str(), stored_claim);
        }
        let insurer_due = claim.as_ref().map_or(Money::ZERO, |(_, c)| c.insurer_due());
        let (kind, status) = match &body {
            Some(body) => {
                if body
                    .patient_id
                    .as_ref()
                    .is_some_and(|p| *p != old.patient_id)
                {
                    return Err(AppError::invalid(
                        "patientId",
                        "a bill's patient does not change",
                    ));
                }
                if body.appointment_id.is_some() && body.appointment_id != old.appointment_id {
                    return Err(AppError::invalid(
                        "appointmentId",
                        "a bill's appointment does not change",
                    ));
                }
                let changed = input::apply(&mut new, body, state.settings.billing.ceiling())?;
                if changed.iter().any(|c| c == "insuranceClaim") {
                    let by = &principal.user_id;
                    claims::follow_bill(&mut batch, state, &mut new, claim, by, now)?;
                }
                if new.paid > Money::ZERO {
                    // What is paid decides the status of a bill with payments.
                    new.status = if new.paid >= new.total {
                        BillStatus::Paid
                    } else {
                        BillStatus::PartiallyPaid
                    };
                }
                if new.total < new.paid {
                    return Err(AppError::Conflict {
                        message: format!("{} is already paid on this bill", new.paid),
                        field: Some("services".into()),
                    });
                }
                this.entity.detail = (!changed.is_empty()).then(|| changed.join(","));
                (BillChange::Updated, "Updated")
            }
            None => {
                if let Some((_, claim)) = &claim
                    && !claim.status.correctable()
                {
                    let e = AppError::Domain {
                        code: ErrorCode::InvalidTransition,
                        message: format!(
                            "claim {} is {}; a bill with a claim at the insurer stays",
                            claim.claim_id,
                            claim.status.as_str()
                        ),
                        field: None,
                    };
                    return Err(refused(state, this, e).await);
                }
                new.status = BillStatus::Void;
                (BillChange::Voided, "Deleted")
            }
        };
        billing::write(&mut batch, &state.vault, &new, &principal.user_id, kind);
        let (before, after) = (
            BillState::of(&old, insurer_due),
            BillState::of(&new, insurer_due),
        );
        stats::tally(&mut batch, state.store.stats_zone(), Some(&before), &after);
        notices::bill_changed(&mut batch, Some(&old), &new, now);
        audit::record(&mut batch, &this);
        match state.store.write(batch).await {
            Ok(_) => {
                tracing::info!(bill = %id, change = kind.as_str(), total = %new.total, "bill changed");
                return Ok(BillWritten {
                    bill_id: id.clone(),
                    status: status.into(),
                });
            }
            Err(WriteError::Changed { .. }) => continue,
            Err(e) => return Err(AppError::internal(e)),
        }
    }
    Err(AppError::Conflict {
        message: "the bill kept changing under this change; try again".into(),
        field: None,
    })
}

/// Whether `bill` may still change (or be voided, with `voiding`).
fn changeable(bill: &Bill, voiding: bool) -> Result<(), AppError> {
    match bill.status {
        BillStatus::Void if voiding => Err(AppError::Gone(format!(
            "bill {} was already deleted",
            bill.bill_id
        ))),
        BillStatus::Void | BillStatus::Paid => Err(AppError::Domain {
            code: ErrorCode::InvalidTransition,
            message: format!("a {} bill no longer changes", bill.status.as_str()),
            field: Some("status".into()),
        }),
        _ if voiding && bill.paid > Money::ZERO => Err(AppError::Domain {
            code: ErrorCode::InvalidTransition,
            message: "a bill with a payment applied cannot be deleted; refund the payment first"
                .into(),
            field: None,
        }),
        _ => Ok(()),
    }
}

/// The filters of `GET /api/bills`.
#[derive(Debug, Default)]
pub struct BillQuery {
    /// Whose bills (patients: their own, the default; doctors: required).
    pub patient_id: Option<PatientId>,
    /// Only bills in this state.
    pub status: Option<BillStatus>,
    /// Bills written on or after this day (UTC).
    pub from: Option<jiff::civil::Date>,
    /// Bills written on or before this day (UTC).
    pub to: Option<jiff::civil::Date>,
    /// Bills whose id sorts after this one.
    pub after: Option<BillId>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// Bills by id, filtered; admins may leave out `patientId`.
///
/// # Errors
/// 422 for a bad limit or a doctor without `patientId`; 403.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    q: BillQuery,
) -> Result<BillList, AppError> {
    let limit = crate::service::page_size(q.limit, MAX_PAGE, MAX_PAGE)?;
    let viewer = viewer(state, principal)?;
    let patient = match (&q.patient_id, viewer.role) {
        (Some(p), _) => Some(p.clone()),
        (None, Role::Patient) => viewer.patient_id.clone(),
        (None, Role::Admin) => None,
        (None, Role::Doctor) => {
            return Err(AppError::invalid("patientId", "patientId is required"));
        }
    };
    let mut this = entry(
        principal,
        origin,
        Action::E,
        entity("Bill", None, patient.iter().cloned().collect()),
    );
    this.entity.detail = Some("list".into());
    let ids = match &patient {
        Some(p) => {
            if let Err(e) = may_read(state, principal, p) {
                return Err(refused(state, this, e).await);
            }
            let mut ids = billing::of_patient(&state.store, p, billing::MAX_PATIENT_BILLS)?;
            if let Some(after) = &q.after {
                ids.retain(|id| id > after);
            }
            ids.truncate(MAX_SCANNED);
            ids
        }
        None => state
            .store
            .scan::<billing::StoredBill>(q.after.as_ref().map(BillId::as_str), MAX_SCANNED)?
            .into_iter()
            .map(|(_, b)| b.bill_id)
            .collect(),
    };
    let (bills, next) = page(ids, limit, BillId::to_string, |id| {
        let Some((_, bill)) =
            billing::load(&state.store, &state.vault, id).map_err(AppError::internal)?
        else {
            return Ok(None);
        };
        let wanted =
            q.status.is_none_or(|s| bill.status == s) && in_days(bill.created_at, q.from, q.to);
        if !wanted {
            return Ok(None);
        }
        let claim = claims::of_bill(state, &bill)?;
        Ok(Some(view(state, bill, claim.map(|(_, c)| c).as_ref())))
    })?;
    durably(state, &this).await?;
    Ok(BillList { bills, next })
}

/// One page of a list: reads `rows` (at most [`MAX_SCANNED`]) in order,
/// keeping what `read` returns, up to `limit`. `next` is the `cursor` of
/// the last row looked at when the page is full or the scan stopped short
/// of the end, so a rare filter answers in bounded time and the client goes
/// on from there.
fn page<I, T>(
    rows: Vec<I>,
    limit: usize,
    cursor: impl Fn(&I) -> String,
    mut read: impl FnMut(&I) -> Result<Option<T>, AppError>,
) -> Result<(Vec<T>, Option<String>), AppError> {
    let scanned_all = rows.len() < MAX_SCANNED;
    let (mut found, mut last) = (Vec::new(), None);
    for row in rows {
        if found.len() == limit {
            break;
        }
        if let Some(item) = read(&row)? {
            found.push(item);
        }
        last = Some(row);
    }
    let more = found.len() == limit || !scanned_all;
    Ok((found, more.then(|| last.as_ref().map(cursor)).flatten()))
}

/// Whether `at` falls on a UTC day from `from` to `to` (either open).
fn in_days(
    at: jiff::Timestamp,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
) -> bool {
    let day = at.to_zoned(jiff::tz::TimeZone::UTC).date();
    from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t)
}

/// The bill, if the caller may read it; fills the entry's patient.
fn readable(
    state: &AppState,
    principal: &Principal,
    this: &mut AuditEntry,
    id: &BillId,
) -> Result<Bill, AppError> {
    let found = billing::load(&state.store, &state.vault, id).map_err(AppError::internal)?;
    let Some((_, bill)) = found else {
        // A patient learns nothing of other patients' bill ids.
        return Err(if principal.role == Role::Patient {
            AppError::Forbidden("patients read only their own bills".into())
        } else {
            AppError::NotFound(format!("no bill {id}"))
        });
    };
    this.entity.patients = vec![bill.patient_id.clone()];
    may_read(state, principal, &bill.patient_id)?;
    Ok(bill)
}

fn view(state: &AppState, bill: Bill, claim: Option<&Claim>) -> BillView {
    BillView {
        balance_due: bill.balance_due(),
        patient_share: bill.total.less(claim.map_or(Money::ZERO, Claim::approved)),
        claim_id: bill.claim_id.clone(),
        claim_status: claim.map(|c| c.status),
        bill_id: bill.bill_id,
        patient_id: bill.patient_id,
        appointment_id: bill.appointment_id,
        services: bill.services,
        insurance_claim: bill.insurance_claim,
        total_amount: bill.total,
        status: bill.status,
        currency: state.settings.billing.currency.clone(),
        payments_applied: bill.paid,
        revision: bill.revision,
        created_at: bill.created_at,
        updated_at: bill.updated_at,
    }
}
