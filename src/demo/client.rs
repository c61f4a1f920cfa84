//! The demo's HTTP client. It speaks the public API only, as any other
//! client would, and keeps the server's refusals (`slot_taken`, `too_soon`,
//! ...) apart from failures, so the seed and the traffic can skip the one
//! and stop on the other.

use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Tries of a request the server rate-limits (429) before it counts as refused.
const RATE_LIMITED_TRIES: u32 = 8;
/// Kept on top of the server's minimum notice when choosing slots, so a
/// slot chosen a moment ago is not refused as `too_soon` when it is booked.
const NOTICE_MARGIN_SECS: i64 = 300;
/// The longest wait for a rate limit (or a lock-out) before trying again.
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// Why a request did not give the answer asked for.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// No connection: the server is not (or no longer) listening.
    #[error("{what}: the server could not be reached: {cause}")]
    Unreachable {
        /// The request, `POST /api/...`.
        what: String,
        /// The connection error.
        cause: reqwest::Error,
    },
    /// The connection broke during the request (or it timed out).
    #[error("{what}: the request failed: {cause}")]
    Transport {
        /// The request.
        what: String,
        /// The transport error.
        cause: reqwest::Error,
    },
    /// A 4xx answer: the server said no.
    #[error("{what}: refused with {status} {code}: {message}")]
    Refused {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The error code of the body (`slot_taken`, ...).
        code: String,
        /// The error message of the body.
        message: String,
    },
    /// A 5xx answer, or a body that is not what the API documents.
    #[error("{what}: answered {status}: {detail}")]
    Failed {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// What went wrong.
        detail: String,
    },
}

impl ApiError {
    /// Whether the server is gone (not listening any more).
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(self, ApiError::Unreachable { .. })
    }

    /// Whether the token was refused (expired or revoked).
    pub(crate) fn is_unauthorized(&self) -> bool {
        matches!(self, ApiError::Refused { status: 401, .. })
    }

    /// Whether the connection broke mid-request (as it does to a request
    /// in flight while the server shuts down).
    pub(crate) fn is_transport(&self) -> bool {
        matches!(self, ApiError::Transport { .. })
    }

    /// The code of a refusal the demo expects now and then and skips: a
    /// booking rule (409 `slot_taken`, `patient_conflict`, 422 `too_soon`,
    /// `outside_availability`, ...) or an appointment gone meanwhile (404).
    /// A malformed request (400, 422 `invalid_field`) is no such refusal.
    pub(crate) fn refusal(&self) -> Option<String> {
        match self {
            ApiError::Refused {
                status: 404 | 409,
                code,
                ..
            } => Some(code.clone()),
            ApiError::Refused {
                status: 422, code, ..
            } if code != "invalid_field" => Some(code.clone()),
            _ => None,
        }
    }
}

/// A client of one server's public HTTP API.
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// A client for the server at `base` (`http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub(crate) fn new(base: String) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            // The server is this process's own: never through a proxy.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .context("could not build the demo's HTTP client")?;
        Ok(Api { http, base })
    }

    /// Sends one request and reads its JSON answer. A 429 is waited out as
    /// its `Retry-After` says (at most `LONGEST_WAIT` at a time) and sent
    /// again, up to `RATE_LIMITED_TRIES` times.
    ///
    /// # Errors
    /// [`ApiError`]: unreachable, broken, refused (4xx) or failed (5xx).
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        let what = format!("{method} {path}");
        let mut tries = 0;
        loop {
            tries += 1;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(cause) if cause.is_connect() => {
                    return Err(ApiError::Unreachable { what, cause });
                }
                Err(cause) => return Err(ApiError::Transport { what, cause }),
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS && tries < RATE_LIMITED_TRIES {
                let wait = retry_after(&response).unwrap_or(Duration::from_secs(1));
                tracing::debug!(request = %what, wait_secs = wait.as_secs(), "demo: rate limited; waiting");
                tokio::time::sleep(wait.min(LONGEST_WAIT)).await;
                continue;
            }
            let text = match response.text().await {
                Ok(text) => text,
                Err(cause) => return Err(ApiError::Transport { what, cause }),
            };
            return decode(what, status, &text);
        }
    }

    /// `GET path` with `token`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<T, ApiError> {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// `POST path` with a JSON body, signed in or not.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<T, ApiError> {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// `PUT path` with a JSON body and `token`.
    pub(crate) async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<T, ApiError> {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// `DELETE path` with `token`.
    pub(crate) async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<T, ApiError> {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// The slots of `provider`'s week (today and six days on, in `zone`)
    /// far enough ahead to book (the server's minimum notice and
    /// [`NOTICE_MARGIN_SECS`] from now), free or not.
    ///
    /// # Errors
    /// As [`Api::call`].
    pub(crate) async fn upcoming_slots(
        &self,
        token: &str,
        provider: &str,
        zone: &TimeZone,
    ) -> Result<Vec<Slot>, ApiError> {
        let (from, to) = week(zone);
        let path = format!("/api/providers/{provider}/slots?from={from}&to={to}");
        let board: BoardReply = self.get(&path, token).await?;
        let earliest = Timestamp::now()
            .as_second()
            .saturating_add(board.min_notice_minutes.saturating_mul(60))
            .saturating_add(NOTICE_MARGIN_SECS);
        Ok(board
            .slots
            .into_iter()
            .filter(|s| s.start.as_second() >= earliest)
            .collect())
    }

    /// Books `slot` with `provider` for `patient`, as `token`'s user (the
    /// patient themselves); the new appointment's id.
    ///
    /// # Errors
    /// As [`Api::call`]; a slot someone took meanwhile is a refusal.
    pub(crate) async fn book(
        &self,
        token: &str,
        patient: &str,
        provider: &str,
        slot: &Slot,
    ) -> Result<String, ApiError> {
        let body = json!({
            "patientId": patient, "providerId": provider,
            "appointmentDate": slot.date, "timeSlot": slot.time_slot, "status": "Scheduled",
        });
        let created: Created = self.post("/api/appointments", Some(token), &body).await?;
        Ok(created.appointment_id)
    }
}

/// The seconds of a `Retry-After` header.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A success's body as `T`, or the error body as an [`ApiError`].
fn decode<T: DeserializeOwned>(
    what: String,
    status: StatusCode,
    text: &str,
) -> Result<T, ApiError> {
    let text = if text.trim().is_empty() { "null" } else { text };
    if status.is_success() {
        return serde_json::from_str(text).map_err(|e| ApiError::Failed {
            what,
            status: status.as_u16(),
            detail: format!("an unexpected body: {e}"),
        });
    }
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if status.is_client_error() {
        Err(ApiError::Refused {
            what,
            status: status.as_u16(),
            code,
            message,
        })
    } else {
        Err(ApiError::Failed {
            what,
            status: status.as_u16(),
            detail: format!("{code}: {message}"),
        })
    }
}

/// What `POST /api/appointments` answers.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    appointment_id: String,
}

/// What `GET /api/providers/{id}/slots` answers (the parts the demo uses).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BoardReply {
    /// The server's `schedule.min_notice_minutes`.
    min_notice_minutes: i64,
    slots: Vec<Slot>,
}

/// One slot of a doctor's board.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Slot {
    /// Its date in the doctor's zone, `YYYY-MM-DD`.
    pub(crate) date: String,
    /// Its start in the doctor's zone, `HH:MM`.
    pub(crate) time_slot: String,
    /// Its start instant.
    pub(crate) start: Timestamp,
    /// `free`, `held` or `booked`.
    pub(crate) state: String,
    /// The appointment holding it, when booked.
    #[serde(default)]
    pub(crate) appointment_id: Option<String>,
    /// Its patient, when booked (admins and the doctor see it).
    #[serde(default)]
    pub(crate) patient_id: Option<String>,
}

impl Slot {
    /// Whether it can be booked.
    pub(crate) fn is_free(&self) -> bool {
        self.state == "free"
    }

    /// Whether an appointment holds it.
    pub(crate) fn is_booked(&self) -> bool {
        self.state == "booked"
    }
}

/// Today in `zone` and six days on: the demo's week.
fn week(zone: &TimeZone) -> (Date, Date) {
    let today = Timestamp::now().to_zoned(zone.clone()).date();
    (today, today.saturating_add(jiff::Span::new().days(6)))
}
