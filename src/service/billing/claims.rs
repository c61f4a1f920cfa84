//! Insurance claims: drafted with the bill that names one, submitted by
//! staff, decided by admins (or an insurer's integration acting as one),
//! their payment recorded against the bill. Every version is kept; every
//! access is audited like the bill's.

use jiff::Timestamp;
use medrelay_actors::audit::{self, Action, AuditEntry};
use medrelay_actors::billing::claims::{self, Claim, Refusal};
use medrelay_actors::billing::{self, Bill, BillChange};
use medrelay_actors::ids::new_id;
use medrelay_actors::stats::{self, billing::BillState, billing::ClaimState};
use medrelay_actors::store::{WriteBatch, WriteError};
use medrelay_protocol::billing::BillStatus;
use medrelay_protocol::claim::{
    ClaimDecision, ClaimList, ClaimStatus, ClaimVersionView, ClaimView, ClaimWritten,
};
use medrelay_protocol::{ClaimId, ErrorCode, Money, Role};

use super::{MAX_SCANNED, RETRIES, bill_id, may_bill, may_read, page};
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, durably, entity, entry, refused};
use crate::state::AppState;

const MAX_VERSIONS: usize = 1_000;

fn claim_id(raw: &str) -> Result<ClaimId, AppError> {
    ClaimId::parse(raw).map_err(|e| AppError::invalid("claimId", e))
}

fn attempt(principal: &Principal, origin: &Origin, action: Action, id: &str) -> AuditEntry {
    entry(
        principal,
        origin,
        action,
        entity("Claim", Some(id), Vec::new()),
    )
}

fn transition(message: String) -> AppError {
    AppError::Domain {
        code: ErrorCode::InvalidTransition,
        message,
        field: Some("status".into()),
    }
}

impl From<Refusal> for AppError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Transition(message) => transition(message),
            Refusal::Field { field, message } => AppError::invalid(field, message),
        }
    }
}

/// Adds to `batch` the claim `bill` names, made (as a draft) or corrected
/// (while a draft or denied), when the bill's `insuranceClaim` is new or
/// changed. `current` is the claim as stored, if the bill has one.
///
/// # Errors
/// 409 when the claim is with the insurer.
pub(super) fn follow_bill(
    batch: &mut WriteBatch,
    state: &AppState,
    bill: &mut Bill,
    current: Option<(claims::StoredClaim, Claim)>,
    by: &medrelay_protocol::UserId,
    now: Timestamp,
) -> Result<(), AppError> {
    let Some(asked) = &bill.insurance_claim else {
        return Ok(());
    };
    let claim = match current {
        Some((_, claim))
            if claim.insurance_provider == asked.insurance_provider
                && claim.claim_amount == asked.claim_amount =>
        {
            return Ok(());
        }
        Some((stored, claim)) => {
            if !claim.status.correctable() {
                return Err(transition(format!(
                    "claim {} is {}; it can be corrected once denied",
                    claim.claim_id,
                    claim.status.as_str()
                )));
            }
            batch.require_equal(claim.claim_id.as_str(), &stored);
            Claim {
                insurance_provider: asked.insurance_provider.clone(),
                claim_amount: asked.claim_amount,
                version: claim.version + 1,
                at: now,
                by: by.clone(),
                ..claim
            }
        }
        None => Claim {
            claim_id: ClaimId::parse(&new_id("clm")).expect("generated ids are valid"),
            bill_id: bill.bill_id.clone(),
            patient_id: bill.patient_id.clone(),
            insurance_provider: asked.insurance_provider.clone(),
            claim_amount: asked.claim_amount,
            status: ClaimStatus::Draft,
            approved_amount: None,
            paid_amount: None,
            reason: None,
            version: 1,
            at: now,
            by: by.clone(),
            first_decision: None,
        },
    };
    bill.claim_id = Some(claim.claim_id.clone());
    claims::write(batch, &state.vault, &claim);
    Ok(())
}

/// The claim a bill names, as stored and opened.
pub(super) fn of_bill(
    state: &AppState,
    bill: &Bill,
) -> Result<Option<(claims::StoredClaim, Claim)>, AppError> {
    match &bill.claim_id {
        Some(id) => claims::load(&state.store, &state.vault, id).map_err(AppError::internal),
        None => Ok(None),
    }
}

/// Sends the bill's claim to the insurer (a draft, or a denied claim
/// corrected on the bill).
///
/// # Errors
/// 403, 404 (a bill without a claim too); 409 when the bill is not issued
/// or the claim is not a draft or denied.
pub async fn submit(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_bill: &str,
) -> Result<ClaimWritten, AppError> {
    let id = bill_id(raw_bill)?;
    let mut this = attempt(principal, origin, Action::U, id.as_str());
    this.entity.detail = Some("submit".into());
    for _ in 0..RETRIES {
        let found = billing::load(&state.store, &state.vault, &id).map_err(AppError::internal)?;
        let Some((stored_bill, bill)) = found else {
            return Err(refused(state, this, AppError::NotFound(format!("no bill {id}"))).await);
        };
        this.entity.patients = vec![bill.patient_id.clone()];
        if let Err(e) = may_bill(state, principal, &bill.patient_id) {
            return Err(refused(state, this, e).await);
        }
        let Some((stored, claim)) = of_bill(state, &bill)? else {
            let e = AppError::NotFound(format!("bill {id} names no insurance claim"));
            return Err(refused(state, this, e).await);
        };
        this.entity.resource_id = Some(claim.claim_id.to_string());
        if !bill.status.is_open() {
            let e = transition(format!(
                "a {} bill's claim is not submitted",
                bill.status.as_str()
            ));
            return Err(refused(state, this, e).await);
        }
        if !claim.status.correctable() {
            let e = transition(format!(
                "claim {} is already {}",
                claim.claim_id,
                claim.status.as_str()
            ));
            return Err(refused(state, this, e).await);
        }
        let submitted = Claim {
            status: ClaimStatus::Submitted,
            version: claim.version + 1,
            at: Timestamp::now(),
            by: principal.user_id.clone(),
            reason: None,
            ..claim.clone()
        };
        let mut batch = WriteBatch::new();
        batch.require_equal(submitted.claim_id.as_str(), &stored);
        // A void racing this submit would otherwise both commit.
        batch.require_equal(bill.bill_id.as_str(), &stored_bill);
        claims::write(&mut batch, &state.vault, &submitted);
        tally(&mut batch, state, (&bill, &claim), (&bill, &submitted));
        audit::record(&mut batch, &this);
        match state.store.write(batch).await {
            Ok(_) => {
                tracing::info!(claim = %submitted.claim_id, bill = %id, "claim submitted");
                return Ok(ClaimWritten {
                    claim_id: submitted.claim_id,
                    status: ClaimStatus::Submitted,
                });
            }
            Err(WriteError::Changed { .. }) => continue,
            Err(e) => return Err(AppError::internal(e)),
        }
    }
    Err(busy())
}

fn busy() -> AppError {
    AppError::Conflict {
        message: "the claim kept changing under this change; try again".into(),
        field: None,
    }
}

/// Records the insurer's progress or decision (admins). `paid` records the
/// insurer's payment against the bill in the same transaction.
///
/// # Errors
/// 403, 404; 409 for a transition the claim's state does not allow; 422
/// naming the field.
pub async fn decide(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_claim: &str,
    decision: ClaimDecision,
) -> Result<ClaimWritten, AppError> {
    let id = claim_id(raw_claim)?;
    let mut this = attempt(principal, origin, Action::U, id.as_str());
    this.entity.detail = Some(decision.status.as_str().to_owned());
    if let Err(e) = principal.require(&[Role::Admin]) {
        return Err(refused(state, this, e).await);
    }
    for _ in 0..RETRIES {
        let found = claims::load(&state.store, &state.vault, &id).map_err(AppError::internal)?;
        let Some((stored, claim)) = found else {
            return Err(refused(state, this, AppError::NotFound(format!("no claim {id}"))).await);
        };
        this.entity.patients = vec![claim.patient_id.clone()];
        let bill = billing::load(&state.store, &state.vault, &claim.bill_id)
            .map_err(AppError::internal)?;
        let Some((stored_bill, mut bill)) = bill else {
            return Err(AppError::internal(anyhow::anyhow!(
                "claim {id} names a missing bill"
            )));
        };
        let now = Timestamp::now();
        let next = match claim.decided(&decision, bill.balance_due(), &principal.user_id, now) {
            Ok(next) => next,
            Err(r) => return Err(refused(state, this, r.into()).await),
        };
        let mut batch = WriteBatch::new();
        batch.require_equal(id.as_str(), &stored);
        // The bill too: what it still owes is split by what the claim expects.
        batch.require_equal(bill.bill_id.as_str(), &stored_bill);
        let before = bill.clone();
        if let Some(paid) = next
            .paid_amount
            .filter(|_| next.status == ClaimStatus::Paid)
        {
            bill.paid = bill.paid.plus(paid).map_err(AppError::internal)?;
            bill.status = if bill.paid >= bill.total {
                BillStatus::Paid
            } else {
                BillStatus::PartiallyPaid
            };
            bill.revision += 1;
            bill.updated_at = Some(now);
            billing::write(
                &mut batch,
                &state.vault,
                &bill,
                &principal.user_id,
                BillChange::Paid,
            );
        }
        claims::write(&mut batch, &state.vault, &next);
        tally(&mut batch, state, (&before, &claim), (&bill, &next));
        medrelay_actors::billing::notices::claim(&mut batch, &next);
        audit::record(&mut batch, &this);
        match state.store.write(batch).await {
            Ok(_) => {
                tracing::info!(claim = %id, status = next.status.as_str(), "claim decided");
                return Ok(ClaimWritten {
                    claim_id: id,
                    status: next.status,
                });
            }
            Err(WriteError::Changed { .. }) => continue,
            Err(e) => return Err(AppError::internal(e)),
        }
    }
    Err(busy())
}

/// Tallies in `batch` what a claim's change (and its bill's, if any) did to
/// the billing figures.
fn tally(
    batch: &mut WriteBatch,
    state: &AppState,
    before: (&Bill, &Claim),
    after: (&Bill, &Claim),
) {
    let zone = state.store.stats_zone();
    let bill = |(b, c): (&Bill, &Claim)| BillState::of(b, c.insurer_due());
    stats::tally(batch, zone, Some(&bill(before)), &bill(after));
    let claim = ClaimState::from(after.1);
    stats::tally(batch, zone, Some(&ClaimState::from(before.1)), &claim);
}

/// A claim with its history, for those who may read its bill.
///
/// # Errors
/// 403, 404.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_claim: &str,
) -> Result<ClaimView, AppError> {
    let id = claim_id(raw_claim)?;
    let mut this = attempt(principal, origin, Action::R, id.as_str());
    let found = claims::load(&state.store, &state.vault, &id).map_err(AppError::internal)?;
    let Some((_, claim)) = found else {
        let e = if principal.role == Role::Patient {
            AppError::Forbidden("patients read only their own claims".into())
        } else {
            AppError::NotFound(format!("no claim {id}"))
        };
        return Err(refused(state, this, e).await);
    };
    this.entity.patients = vec![claim.patient_id.clone()];
    if let Err(e) = may_read(state, principal, &claim.patient_id) {
        return Err(refused(state, this, e).await);
    }
    let history = claims::versions(&state.store, &state.vault, &id, MAX_VERSIONS)
        .map_err(AppError::internal)?
        .into_iter()
        .map(|v| ClaimVersionView {
            version: v.version,
            status: v.status,
            insurance_provider: v.insurance_provider,
            claim_amount: v.claim_amount,
            approved_amount: v.approved_amount,
            reason: v.reason,
            at: v.at,
            by: v.by,
        })
        .collect();
    let total = total_of(state, &claim)?;
    durably(state, &this).await?;
    Ok(view(state, claim, total, history))
}

/// The filters of `GET /api/claims`.
#[derive(Debug, Default)]
pub struct ClaimQuery {
    /// Only claims in this state.
    pub status: Option<ClaimStatus>,
    /// Only claims to this insurer (exact).
    pub insurance_provider: Option<String>,
    /// Claims whose id sorts after this one.
    pub after: Option<ClaimId>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// Claims by id, filtered (admins).
///
/// # Errors
/// 403; 422 for a bad limit.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    q: ClaimQuery,
) -> Result<ClaimList, AppError> {
    let limit = crate::service::page_size(q.limit, super::MAX_PAGE, super::MAX_PAGE)?;
    let mut this = entry(
        principal,
        origin,
        Action::E,
        entity("Claim", None, Vec::new()),
    );
    this.entity.detail = Some("list".into());
    if let Err(e) = principal.require(&[Role::Admin]) {
        return Err(refused(state, this, e).await);
    }
    let stored = claims::scan(&state.store, q.after.as_ref(), MAX_SCANNED)?;
    let mut patients = Vec::new();
    let (claims, next) = page(
        stored,
        limit,
        |c| c.claim_id.to_string(),
        |stored| {
            let wanted = q.status.is_none_or(|s| stored.status == s)
                && q.insurance_provider
                    .as_deref()
                    .is_none_or(|p| stored.insurance_provider == p);
            if !wanted {
                return Ok(None);
            }
            let claim = claims::open(&state.vault, stored.clone()).map_err(AppError::internal)?;
            let total = total_of(state, &claim)?;
            patients.push(claim.patient_id.clone());
            Ok(Some(view(state, claim, total, Vec::new())))
        },
    )?;
    this.entity.patients = patients;
    durably(state, &this).await?;
    Ok(ClaimList { claims, next })
}

/// The total of the bill `claim` claims for.
fn total_of(state: &AppState, claim: &Claim) -> Result<Money, AppError> {
    Ok(state
        .store
        .get::<billing::StoredBill>(claim.bill_id.as_str())?
        .map_or(Money::ZERO, |b| b.total))
}

fn view(state: &AppState, c: Claim, total: Money, history: Vec<ClaimVersionView>) -> ClaimView {
    ClaimView {
        patient_share: total.less(c.approved()),
        claim_id: c.claim_id,
        bill_id: c.bill_id,
        patient_id: c.patient_id,
        insurance_provider: c.insurance_provider,
        claim_amount: c.claim_amount,
        status: c.status,
        approved_amount: c.approved_amount,
        paid_amount: c.paid_amount,
        reason: c.reason,
        currency: state.settings.billing.currency.clone(),
        version: c.version,
        history,
    }
}
