//! Invoices (seed: "Generates invoice for all payments", "invoice by
//! patient IDs"): the services of the bills that payments paid, line by
//! line, with each patient's name. A preview is computed on request; an
//! issued invoice takes the next number of a gapless sequence and is kept,
//! sealed, as the exact bytes first answered.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use medrelay_actors::audit::{self, Action};
use medrelay_actors::billing::payments::PaymentRecord;
use medrelay_actors::billing::{self, invoices};
use medrelay_actors::patients;
use medrelay_actors::store::{WriteBatch, WriteError};
use medrelay_protocol::invoice::{Invoice, InvoiceLine, InvoiceRequest};
use medrelay_protocol::payment::{Allocation, PaymentStatus};
use medrelay_protocol::{BillId, Money, PatientId, Role};

use super::in_days;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, durably, entity, entry, refused};
use crate::state::AppState;

/// Most patients one invoice names.
const MAX_PATIENTS: usize = 100;
/// Payments read per page while building an invoice over all patients.
const PAGE: usize = 1_024;
/// How often issuing retries when another invoice took its number.
const ATTEMPTS: usize = 5;

/// The patients an invoice may cover for this caller: admins any (none
/// named: all); patients only themselves.
fn covered(
    state: &AppState,
    principal: &Principal,
    asked: Option<Vec<PatientId>>,
) -> Result<Vec<PatientId>, AppError> {
    let asked = asked.unwrap_or_default();
    if asked.len() > MAX_PATIENTS {
        return Err(AppError::invalid(
            "patientIds",
            format!("at most {MAX_PATIENTS} patients"),
        ));
    }
    match principal.role {
        Role::Admin => {
            let mut unique: Vec<PatientId> = Vec::with_capacity(asked.len());
            for p in asked {
                if !unique.contains(&p) {
                    unique.push(p);
                }
            }
            Ok(unique)
        }
        Role::Patient => {
            let own = crate::service::schedule::viewer(state, principal)?
                .patient_id
                .ok_or_else(|| AppError::Forbidden("this account has no patient profile".into()))?;
            if asked.iter().any(|p| *p != own) {
                return Err(AppError::Forbidden(
                    "patients see only their own invoices".into(),
                ));
            }
            Ok(vec![own])
        }
        Role::Doctor => Err(AppError::Forbidden(
            "invoices are for the clinic's staff and the patients".into(),
        )),
    }
}

/// The invoice as it would be issued now, with `invoice_id`.
fn build(
    state: &AppState,
    invoice_id: String,
    patients: &[PatientId],
    req: &InvoiceRequest,
    now: Timestamp,
) -> Result<Invoice, AppError> {
    let payments = paid(state, patients, req)?;
    let mut names: HashMap<PatientId, String> = HashMap::new();
    let mut seen: HashSet<BillId> = HashSet::new();
    let (mut lines, mut total, mut applied) = (Vec::new(), Money::ZERO, Money::ZERO);
    let mut due = Money::ZERO;
    for (_, allocations) in payments {
        for allocation in &allocations {
            applied = applied
                .plus(allocation.amount)
                .map_err(AppError::internal)?;
            if !seen.insert(allocation.bill_id.clone()) {
                continue;
            }
            let Some((_, bill)) = billing::load(&state.store, &state.vault, &allocation.bill_id)
                .map_err(AppError::internal)?
            else {
                continue;
            };
            let name = match names.get(&bill.patient_id) {
                Some(name) => name.clone(),
                None => {
                    let name = patients::load(&state.store, &state.vault, &bill.patient_id)
                        .map_err(AppError::internal)?
                        .map(|p| p.name)
                        .unwrap_or_default();
                    names.insert(bill.patient_id.clone(), name.clone());
                    name
                }
            };
            due = due.plus(bill.balance_due()).map_err(AppError::internal)?;
            for service in bill.services {
                total = total.plus(service.amount).map_err(AppError::internal)?;
                lines.push(InvoiceLine {
                    patient_id: bill.patient_id.clone(),
                    patient_name: name.clone(),
                    item: service.service_id,
                    description: service.description,
                    amount: service.amount,
                });
            }
        }
    }
    Ok(Invoice {
        invoice_id,
        invoice_date: now,
        currency: state.settings.billing.currency.clone(),
        patient_ids: patients.to_vec(),
        from: req.from,
        to: req.to,
        lines,
        total_amount: total,
        payments_applied: applied,
        balance_due: due,
    })
}

/// What the payments of `patients` (none: all) made in the request's days
/// paid on each bill, oldest payment first. Only the allocations are kept
/// (not whole payment records), so an invoice over 100,000 payments holds a
/// few megabytes.
fn paid(
    state: &AppState,
    patients: &[PatientId],
    req: &InvoiceRequest,
) -> Result<Vec<(Paid, Vec<Allocation>)>, AppError> {
    let mut found = Vec::new();
    let mut keep = |p: PaymentRecord| {
        let counts = matches!(
            p.status,
            PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded
        ) && in_days(p.created_at, req.from, req.to);
        if counts {
            let allocations: Vec<Allocation> = p
                .allocations
                .into_iter()
                .filter(|a| a.amount > Money::ZERO)
                .collect();
            if !allocations.is_empty() {
                found.push(((p.created_at, p.payment_id), allocations));
            }
        }
    };
    if patients.is_empty() {
        let mut after: Option<String> = None;
        loop {
            let page = state.store.scan::<PaymentRecord>(after.as_deref(), PAGE)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            page.into_iter().for_each(|(_, p)| keep(p));
        }
    } else {
        for patient in patients {
            for id in billing::payments::of_patient(&state.store, patient, usize::MAX)? {
                if let Some(p) = state.store.get::<PaymentRecord>(id.as_str())? {
                    keep(p);
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// When a payment was made, and which (the order of an invoice's lines).
type Paid = (Timestamp, medrelay_protocol::PaymentId);

/// The invoice as it would be issued now (`invoiceId` `draft`).
///
/// # Errors
/// 403; 422 naming the field.
pub async fn preview(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    req: InvoiceRequest,
) -> Result<Invoice, AppError> {
    let mut this = entry(
        principal,
        origin,
        Action::E,
        entity("Invoice", None, Vec::new()),
    );
    this.entity.detail = Some("preview".into());
    let patients = match covered(state, principal, req.patient_ids.clone()) {
        Ok(p) => p,
        Err(e) => return Err(refused(state, this, e).await),
    };
    this.entity.patients = patients.clone();
    let invoice = build(state, "draft".into(), &patients, &req, Timestamp::now())?;
    durably(state, &this).await?;
    Ok(invoice)
}

/// Issues an invoice (admins; patients preview theirs, and read those
/// issued for them): the next number, kept as the exact bytes answered.
/// Returns its id and body.
///
/// # Errors
/// 403; 422 naming the field.
pub async fn issue(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    req: InvoiceRequest,
) -> Result<(String, Vec<u8>), AppError> {
    let mut this = entry(
        principal,
        origin,
        Action::C,
        entity("Invoice", None, Vec::new()),
    );
    if let Err(e) = principal.require(&[Role::Admin]) {
        return Err(refused(state, this, e).await);
    }
    let patients = match covered(state, principal, req.patient_ids.clone()) {
        Ok(p) => p,
        Err(e) => return Err(refused(state, this, e).await),
    };
    this.entity.patients = patients.clone();
    let now = Timestamp::now();
    let mut invoice = build(state, String::new(), &patients, &req, now)?;
    let _turn = state.invoice_numbers.lock().await;
    for _ in 0..ATTEMPTS {
        let number = invoices::next_number(&state.store)?;
        invoice.invoice_id = invoices::invoice_id(number);
        this.entity.resource_id = Some(invoice.invoice_id.clone());
        let body = serde_json::to_vec(&invoice).map_err(AppError::internal)?;
        let mut batch = WriteBatch::new();
        let by = &principal.user_id;
        invoices::issue(
            &mut batch,
            &state.vault,
            number,
            &body,
            patients.clone(),
            by,
            now,
        );
        audit::record(&mut batch, &this);
        match state.store.write(batch).await {
            Ok(_) => {
                tracing::info!(invoice = %invoice.invoice_id, lines = invoice.lines.len(), total = %invoice.total_amount, "invoice issued");
                return Ok((invoice.invoice_id, body));
            }
            Err(WriteError::Exists { .. }) => continue,
            Err(e) => return Err(AppError::internal(e)),
        }
    }
    Err(AppError::Conflict {
        message: "other invoices kept taking the next number; try again".into(),
        field: None,
    })
}

/// An issued invoice's body, byte for byte: admins, or the one patient it
/// covers.
///
/// # Errors
/// 403, 404.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    id: &str,
) -> Result<Vec<u8>, AppError> {
    let mut this = entry(
        principal,
        origin,
        Action::R,
        entity("Invoice", Some(id), Vec::new()),
    );
    let found = invoices::load(&state.store, &state.vault, id).map_err(AppError::internal)?;
    let Some((stored, body)) = found else {
        let e = if principal.role == Role::Patient {
            AppError::Forbidden("patients read only their own invoices".into())
        } else {
            AppError::NotFound(format!("no invoice {id}"))
        };
        return Err(refused(state, this, e).await);
    };
    this.entity.patients = stored.patient_ids.clone();
    let allowed = match principal.role {
        Role::Admin => true,
        Role::Patient => {
            let own = crate::service::schedule::viewer(state, principal)?.patient_id;
            own.is_some_and(|own| stored.patient_ids == [own])
        }
        Role::Doctor => false,
    };
    if !allowed {
        let e = AppError::Forbidden("that invoice is not yours to see".into());
        return Err(refused(state, this, e).await);
    }
    durably(state, &this).await?;
    Ok(body)
}
