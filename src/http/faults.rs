//! Test-only fault hooks, compiled only with the `fault-injection` feature
//! (the test suite's build). A release build has no such route.

use std::sync::Arc;

use axum::extract::{Path, State};
use medrelay_actors::accounts::InjectPanic;
use medrelay_protocol::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(panic_account))
        .routes(routes!(panic_schedule))
        .routes(routes!(panic_session))
        .routes(routes!(advance_clock))
        .routes(routes!(schedule_handover))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Handover {
    /// Bookings to deliver to the doctor's retiring actor.
    #[schema(value_type = Vec<Object>)]
    bookings: Vec<medrelay_protocol::schedule::BookAppointment>,
}

/// Provokes a hand-over between two actors of one doctor (admins, test
/// builds only): the doctor's actor retires and is held on its thread while
/// a successor is started, then `bookings` are delivered to the retired
/// actor's address, which revives it. Answers each booking's outcome
/// (`created` or its error code), in order.
#[utoipa::path(post, path = "/api/test-faults/schedule-handover/{providerId}", tag = "test",
    params(("providerId" = String, Path)), request_body = Handover,
    responses((status = 200, body = Object)))]
async fn schedule_handover(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(provider_id): Path<String>,
    super::json::Json(body): super::json::Json<Handover>,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    use medrelay_actors::schedule::messages::{Book, ParkRetirement};
    principal.require(&[Role::Admin])?;
    let retiring = state.schedules.get(&provider_id);
    let (retired, parked) = std::sync::mpsc::sync_channel(1);
    let (resume, held) = std::sync::mpsc::sync_channel(1);
    retiring.do_send(ParkRetirement {
        retired,
        resume: held,
    });
    tokio::task::spawn_blocking(move || parked.recv_timeout(std::time::Duration::from_secs(10)))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    // The old actor is out of the registry and holds its thread: the next
    // lookup starts its successor, as a concurrent request would.
    let _successor = state.schedules.get(&provider_id);
    let pending: Vec<_> = body
        .bookings
        .into_iter()
        .map(|request| {
            retiring.send(Book {
                request,
                by: Some(principal.user_id.clone()),
            })
        })
        .collect();
    let _ = resume.send(());
    let mut outcomes = Vec::new();
    for result in futures_util::future::join_all(pending).await {
        outcomes.push(match result.map_err(AppError::from)? {
            Ok(_) => "created".to_owned(),
            Err(e) => AppError::from(e).code().as_str().to_owned(),
        });
    }
    Ok(axum::Json(serde_json::json!({ "outcomes": outcomes })))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Advance {
    /// The instant the clock moves forward to (RFC 3339).
    #[schema(value_type = String)]
    to: jiff::Timestamp,
}

/// Moves the notification clock forward to an instant (admins, test builds
/// only), so a test sees a reminder due tomorrow fire now.
#[utoipa::path(post, path = "/api/test-faults/clock", tag = "test", request_body = Advance,
    responses((status = 204)))]
async fn advance_clock(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    super::json::Json(body): super::json::Json<Advance>,
) -> Result<axum::http::StatusCode, AppError> {
    principal.require(&[Role::Admin])?;
    state.notifier.clock.advance_to(body.to);
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Makes one doctor's schedule actor panic inside a handler (admins, test builds only).
#[utoipa::path(post, path = "/api/test-faults/schedule-panic/{providerId}", tag = "test",
    params(("providerId" = String, Path)), responses((status = 500)))]
async fn panic_schedule(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(provider_id): Path<String>,
) -> Result<(), AppError> {
    principal.require(&[Role::Admin])?;
    state
        .schedules
        .send(
            &provider_id,
            medrelay_actors::schedule::messages::InjectPanic,
        )
        .await?
        .map_err(|e| AppError::internal(anyhow::anyhow!("injected fault: {e}")))
}

/// Makes one patient's session actor panic inside a handler (admins, test
/// builds only); the supervisor restarts it with the patient's sockets.
#[utoipa::path(post, path = "/api/test-faults/session-panic/{patientId}", tag = "test",
    params(("patientId" = String, Path)), responses((status = 500)))]
async fn panic_session(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(patient_id): Path<String>,
) -> Result<(), AppError> {
    principal.require(&[Role::Admin])?;
    let patient = medrelay_protocol::PatientId::parse(&patient_id)
        .map_err(|e| AppError::invalid("patientId", e))?;
    Ok(state.sessions.inject_panic(&patient).await?)
}

/// Makes one account actor panic inside a handler (admins, test builds only).
#[utoipa::path(post, path = "/api/test-faults/account-panic/{userId}", tag = "test",
    params(("userId" = String, Path)), responses((status = 500)))]
async fn panic_account(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> Result<(), AppError> {
    principal.require(&[Role::Admin])?;
    state
        .accounts
        .send(&user_id, InjectPanic)
        .await?
        .map_err(|e| AppError::internal(anyhow::anyhow!("injected fault: {e}")))
}
