//! `/api/appointments`: book, read, move, cancel and list (seed section 1).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::civil::Date;
use medrelay_actors::accounts::ProviderRecord;
use medrelay_actors::schedule::{
    AppointmentRecord, PatientAppointment, indexed_ids, provider_appointments,
};
use medrelay_protocol::schedule::{
    AppointmentId, AppointmentStatus, BookAppointment, UpdateAppointment,
};
use medrelay_protocol::{PatientId, ProviderId, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::Json;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::schedule::{self, AppointmentView, render, time_zone_of, view};
use crate::state::AppState;

/// `/api/appointments/*`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(book, list))
        .routes(routes!(get_one, update, cancel))
}

fn appointment_id(raw: &str) -> Result<AppointmentId, AppError> {
    AppointmentId::parse(raw).map_err(|e| AppError::invalid("appointmentId", e))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Created {
    #[schema(value_type = String)]
    appointment_id: AppointmentId,
    /// `Created` or `Updated`.
    status: &'static str,
}

/// Books a slot: patients for themselves, doctors on their own schedule,
/// admins anywhere. Body as in the seed; `timeSlot` is the slot's start in
/// the doctor's time zone.
#[utoipa::path(post, path = "/api/appointments", tag = "appointments",
    request_body(content = Object, description = "{patientId, providerId, appointmentDate, timeSlot, status?}"),
    responses((status = 201, body = Created), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope, description = "slot_taken, patient_conflict"),
        (status = 422, body = ErrorEnvelope, description = "outside_availability, too_soon, too_far")),
    security(("bearer" = [])))]
async fn book(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<BookAppointment>,
) -> Result<(StatusCode, axum::Json<Created>), AppError> {
    let viewer = schedule::viewer(&state, &principal)?;
    let record = schedule::book(&state, &viewer, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Created {
            appointment_id: record.appointment_id,
            status: "Created",
        }),
    ))
}

/// An appointment with its history: the patient's own, a doctor's own
/// schedule, any for admins.
#[utoipa::path(get, path = "/api/appointments/{appointmentId}", tag = "appointments",
    params(("appointmentId" = String, Path)),
    responses((status = 200, body = AppointmentView), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<AppointmentView>, AppError> {
    let id = appointment_id(&id)?;
    let viewer = schedule::viewer(&state, &principal)?;
    let record = schedule::find(&state, &viewer, &id)?;
    Ok(axum::Json(render(&state, record)))
}

/// Moves an appointment (`appointmentDate`/`timeSlot`, status `Rescheduled`)
/// or changes its status (`CheckedIn`, `Completed`, `NoShow`, `Cancelled`).
/// A move takes the new slot and frees the old one in one step.
#[utoipa::path(put, path = "/api/appointments/{appointmentId}", tag = "appointments",
    params(("appointmentId" = String, Path)),
    request_body(content = Object, description = "{appointmentDate?, timeSlot?, status?}"),
    responses((status = 200, body = Created), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<UpdateAppointment>,
) -> Result<axum::Json<Created>, AppError> {
    let id = appointment_id(&id)?;
    let viewer = schedule::viewer(&state, &principal)?;
    let record = schedule::update(&state, &viewer, &id, body).await?;
    Ok(axum::Json(Created {
        appointment_id: record.appointment_id,
        status: "Updated",
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Cancelled {
    /// Always `Cancelled`.
    status: &'static str,
    #[schema(value_type = String)]
    appointment_id: AppointmentId,
}

/// Cancels an appointment.
#[utoipa::path(delete, path = "/api/appointments/{appointmentId}", tag = "appointments",
    params(("appointmentId" = String, Path)),
    responses((status = 200, body = Cancelled), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn cancel(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<Cancelled>, AppError> {
    let id = appointment_id(&id)?;
    let viewer = schedule::viewer(&state, &principal)?;
    let record = schedule::cancel(&state, &viewer, &id).await?;
    Ok(axum::Json(Cancelled {
        status: "Cancelled",
        appointment_id: record.appointment_id,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    #[param(value_type = Option<String>)]
    provider_id: Option<ProviderId>,
    #[param(value_type = Option<String>)]
    patient_id: Option<PatientId>,
    /// First date (doctor's zone), inclusive.
    #[param(value_type = Option<String>)]
    from: Option<Date>,
    /// Last date, inclusive.
    #[param(value_type = Option<String>)]
    to: Option<Date>,
    #[param(value_type = Option<String>)]
    status: Option<AppointmentStatus>,
    /// Only appointments the doctor's changed hours no longer fit (`true`),
    /// or only the others (`false`).
    needs_reschedule: Option<bool>,
}

#[derive(Serialize, ToSchema)]
struct AppointmentList {
    appointments: Vec<AppointmentView>,
}

/// Lists appointments by doctor and/or patient. Patients see only their own;
/// doctors their own schedule, or a patient of theirs; admins any (naming a
/// doctor or a patient).
#[utoipa::path(get, path = "/api/appointments", tag = "appointments", params(ListQuery),
    responses((status = 200, body = AppointmentList), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<AppointmentList>, AppError> {
    let Query(mut q) = query.map_err(super::json::bad_query)?;
    let viewer = schedule::viewer(&state, &principal)?;
    match viewer.role {
        Role::Patient => {
            if q.patient_id.is_some() && q.patient_id != viewer.patient_id {
                return Err(AppError::Forbidden(
                    "patients list only their own appointments".into(),
                ));
            }
            q.patient_id = viewer.patient_id.clone();
        }
        Role::Doctor => {
            if q.provider_id.is_none() && q.patient_id.is_none() {
                q.provider_id = viewer.provider_id.clone();
            }
            if let Some(p) = &q.provider_id
                && !viewer.manages(p)
            {
                return Err(AppError::Forbidden(
                    "doctors list only their own schedule".into(),
                ));
            }
            if let Some(p) = &q.patient_id
                && q.provider_id.is_none()
                && !viewer.may_see_patient(&state.store, p)?
            {
                return Err(AppError::Forbidden("not a patient of yours".into()));
            }
        }
        Role::Admin => {}
    }
    let records: Vec<AppointmentRecord> = match (&q.provider_id, &q.patient_id) {
        (Some(provider), _) => {
            if state
                .store
                .get::<ProviderRecord>(provider.as_str())?
                .is_none()
            {
                return Err(AppError::NotFound(format!("no provider {provider}")));
            }
            provider_appointments(&state.store, provider)?
        }
        (None, Some(patient)) => {
            let mut out = Vec::new();
            for id in indexed_ids::<PatientAppointment>(&state.store, patient.as_str(), usize::MAX)?
            {
                if let Some(a) = state.store.get::<AppointmentRecord>(id.as_str())? {
                    out.push(a);
                }
            }
            out.sort_by_key(|a| a.slot.start);
            out
        }
        (None, None) => {
            return Err(AppError::invalid(
                "providerId",
                "name a providerId or a patientId",
            ));
        }
    };
    // A list is mostly one doctor's: read each provider's zone once.
    let mut zones: HashMap<ProviderId, Option<String>> = HashMap::new();
    let appointments = records
        .into_iter()
        .filter(|a| q.patient_id.as_ref().is_none_or(|p| &a.patient_id == p))
        .filter(|a| q.status.is_none_or(|s| a.status == s))
        .filter(|a| q.needs_reschedule.is_none_or(|n| a.needs_reschedule == n))
        .filter(|a| q.from.is_none_or(|f| a.slot.date >= f))
        .filter(|a| q.to.is_none_or(|t| a.slot.date <= t))
        .map(|a| {
            let time_zone = zones
                .entry(a.provider_id.clone())
                .or_insert_with(|| time_zone_of(&state, &a.provider_id))
                .clone();
            view(a, time_zone)
        })
        .collect();
    Ok(axum::Json(AppointmentList { appointments }))
}
