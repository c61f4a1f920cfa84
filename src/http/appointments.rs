//! `/api/appointments`: book, read, move, cancel and list (seed section 1).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use medrelay_protocol::schedule::{AppointmentId, BookAppointment, UpdateAppointment};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::Json;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::schedule::{self, render};
use crate::state::AppState;
use medrelay_protocol::schedule::{AppointmentList, AppointmentView, ListQuery};

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
    request_body = BookAppointment,
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
    request_body = UpdateAppointment,
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
    let Query(q) = query.map_err(super::json::bad_query)?;
    schedule::list(&state, &principal, q).map(axum::Json)
}
