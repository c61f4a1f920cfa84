//! Billing accounts (patient-management's `GetBillingAccount` and
//! `CreateBillingAccount`): one per patient, opened with the patient.

use jiff::Timestamp;
use medrelay_actors::audit::{self, Action};
use medrelay_actors::billing::payments::PaymentRecord;
use medrelay_actors::billing::{self, BillingAccount};
use medrelay_actors::patients;
use medrelay_actors::store::{WriteBatch, WriteError};
use medrelay_protocol::billing::{BillingAccountView, OpenBill, PaymentSummary};
use medrelay_protocol::{Money, Role};

use super::may_see_payments;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, durably, entity, entry, refused};
use crate::state::AppState;

/// Most payments an account lists.
const MAX_PAYMENTS_SHOWN: usize = 100;

/// A patient's billing account: what they owe on which bills, and credit.
///
/// # Errors
/// 403; 404 for a patient without an account.
pub async fn account(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_patient: &str,
) -> Result<BillingAccountView, AppError> {
    let patient = crate::service::parse_patient_id(raw_patient)?;
    let mut this = entry(
        principal,
        origin,
        Action::R,
        entity(
            "BillingAccount",
            Some(patient.as_str()),
            vec![patient.clone()],
        ),
    );
    // An account shows payments and credit (as on `billing:<patientId>`).
    if let Err(e) = may_see_payments(state, principal, &patient) {
        return Err(refused(state, this, e).await);
    }
    let Some(account) = state.store.get::<BillingAccount>(patient.as_str())? else {
        this.entity.detail = Some("not_found".into());
        let e = AppError::NotFound(format!("no billing account for patient {patient}"));
        return Err(refused(state, this, e).await);
    };
    let mut open_bills = Vec::new();
    let mut balance = Money::ZERO;
    for stored in billing::open_bills(&state.store, &patient)? {
        let due = stored.total.less(stored.paid);
        balance = balance.plus(due).map_err(AppError::internal)?;
        open_bills.push(OpenBill {
            bill_id: stored.bill_id,
            status: stored.status,
            total_amount: stored.total,
            balance_due: due,
            created_at: stored.created_at,
        });
    }
    let mut payments = Vec::new();
    for id in billing::payments::of_patient(&state.store, &patient, billing::MAX_PATIENT_BILLS)? {
        if let Some(p) = state.store.get::<PaymentRecord>(id.as_str())? {
            payments.push(PaymentSummary {
                payment_id: p.payment_id,
                amount: p.amount,
                refunded: p.refunded,
                status: p.status,
                created_at: p.created_at,
            });
        }
    }
    payments.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    payments.truncate(MAX_PAYMENTS_SHOWN);
    durably(state, &this).await?;
    Ok(BillingAccountView {
        patient_id: account.patient_id,
        currency: state.settings.billing.currency.clone(),
        balance,
        credit: account.credit,
        open_bills,
        payments,
        opened_at: account.opened_at,
    })
}

/// Opens a patient's account if they have none (admins; every patient gets
/// one when registered, so this answers for patients made elsewhere), then
/// answers as [`account`].
///
/// # Errors
/// 403; 404 for an unknown patient.
pub async fn open(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_patient: &str,
) -> Result<BillingAccountView, AppError> {
    let patient = crate::service::parse_patient_id(raw_patient)?;
    let mut this = entry(
        principal,
        origin,
        Action::C,
        entity(
            "BillingAccount",
            Some(patient.as_str()),
            vec![patient.clone()],
        ),
    );
    if let Err(e) = principal.require(&[Role::Admin]) {
        return Err(refused(state, this, e).await);
    }
    if !patients::is_live(&state.store, &patient)? {
        this.entity.detail = Some("not_found".into());
        let e = AppError::NotFound(format!("no patient {patient}"));
        return Err(refused(state, this, e).await);
    }
    if state
        .store
        .get::<BillingAccount>(patient.as_str())?
        .is_none()
    {
        let mut batch = WriteBatch::new();
        billing::open_account(&mut batch, &patient, Timestamp::now());
        audit::record(&mut batch, &this);
        match state.store.write(batch).await {
            // Opened meanwhile by another request: the same account.
            Ok(_) | Err(WriteError::Exists { .. }) => {}
            Err(e) => return Err(AppError::internal(e)),
        }
    }
    account(state, principal, origin, raw_patient).await
}
