//! `/api/analytics/*`: the clinic's reports. Each answers JSON, or the same
//! table as CSV when the request sends `Accept: text/csv`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use medrelay_protocol::analytics::{
    AppointmentFigures, AppointmentsQuery, AppointmentsReport, BillingFigures, BillingReport,
    NotificationFigures, NotificationsReport, PeriodQuery, ProviderReport, RecordFigures,
    RecordsReport,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::bad_query;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::analytics;
use crate::state::AppState;

/// The routes of this file.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(appointments))
        .routes(routes!(records))
        .routes(routes!(billing))
        .routes(routes!(provider))
        .routes(routes!(notifications))
}

/// Appointments per bucket and doctor: booked, completed, cancelled (late
/// ones apart), no-shows, no-show and fill rates, median lead time, moves
/// and waitlist fills, by the clinic's days (admins).
#[utoipa::path(get, path = "/api/analytics/appointments", tag = "analytics",
    params(AppointmentsQuery),
    responses((status = 200, body = AppointmentsReport, description = "JSON; the same table as CSV with `Accept: text/csv`"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn appointments(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    query: Result<Query<AppointmentsQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let report = move || analytics::appointments(&state, &principal, q);
    answer(&headers, report, |report| {
        let mut table = vec![header_row()];
        for row in &report.rows {
            table.push(figures_row(&row.period, &row.provider_id, &row.figures));
        }
        table.push(figures_row("total", "", &report.totals));
        table
    })
    .await
}

/// Medical records created, changed and deleted per bucket and author,
/// by the clinic's days (admins).
#[utoipa::path(get, path = "/api/analytics/records", tag = "analytics",
    params(PeriodQuery),
    responses((status = 200, body = RecordsReport, description = "JSON; the same table as CSV with `Accept: text/csv`"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn records(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let report = move || analytics::records(&state, &principal, q);
    answer(&headers, report, |report| {
        let mut table = vec![names(&[
            "period",
            "authorId",
            "providerId",
            "created",
            "updated",
            "deleted",
        ])];
        let line = |period: &str, author: &str, provider: &str, f: &RecordFigures| {
            vec![
                period.to_owned(),
                author.to_owned(),
                provider.to_owned(),
                f.created.to_string(),
                f.updated.to_string(),
                f.deleted.to_string(),
            ]
        };
        for row in &report.rows {
            let provider = row.provider_id.as_deref().unwrap_or("");
            table.push(line(&row.period, &row.author_id, provider, &row.figures));
        }
        table.push(line("total", "", "", &report.totals));
        table
    })
    .await
}

/// Charges, collections, refunds and claim answers per bucket, by the
/// clinic's days, and accounts receivable now by age, patients' and
/// insurers' shares apart, with days in A/R (admins). As CSV: the buckets
/// and their total, a blank line, then the receivable by age.
#[utoipa::path(get, path = "/api/analytics/billing", tag = "analytics",
    params(PeriodQuery),
    responses((status = 200, body = BillingReport, description = "JSON; the same tables as CSV with `Accept: text/csv`"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn billing(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let report = move || analytics::billing(&state, &principal, q);
    answer(&headers, report, |report| {
        let head = names(&[
            "period",
            "charges",
            "bills",
            "collectedFromPatients",
            "payments",
            "collectedFromInsurers",
            "refunds",
            "netCollectionRate",
            "claimsAnswered",
            "claimsDenied",
            "claimsClean",
            "denialRate",
            "cleanClaimRate",
        ]);
        let line = |period: &str, f: &BillingFigures| {
            vec![
                period.to_owned(),
                f.charges.to_string(),
                f.bills.to_string(),
                f.collected_from_patients.to_string(),
                f.payments.to_string(),
                f.collected_from_insurers.to_string(),
                f.refunds.to_string(),
                cell(f.net_collection_rate),
                f.claims_answered.to_string(),
                f.claims_denied.to_string(),
                f.claims_clean.to_string(),
                cell(f.denial_rate),
                cell(f.clean_claim_rate),
            ]
        };
        let mut table = vec![head];
        for row in &report.rows {
            table.push(line(&row.period, &row.figures));
        }
        table.push(line("total", &report.totals));
        let r = &report.receivable;
        table.push(Vec::new());
        table.push(names(&[
            "ageDays", "patients", "insurers", "total", "asOf", "daysInAr",
        ]));
        for age in &r.aging {
            table.push(vec![
                age.days.clone(),
                age.patients.to_string(),
                age.insurers.to_string(),
                age.total.to_string(),
                String::new(),
                String::new(),
            ]);
        }
        table.push(vec![
            "total".into(),
            r.patients.to_string(),
            r.insurers.to_string(),
            r.total.to_string(),
            r.as_of.to_string(),
            cell(r.days_in_ar),
        ]);
        table
    })
    .await
}

/// One doctor's activity per bucket: patients seen (each once), visits and
/// the appointments report's figures; and how full each of the clinic's
/// weekday hours was (admins, and the doctor). As CSV: the buckets and
/// their total, a blank line, then the hours.
#[utoipa::path(get, path = "/api/analytics/providers/{providerId}", tag = "analytics",
    params(("providerId" = String, Path), PeriodQuery),
    responses((status = 200, body = ProviderReport, description = "JSON; the same tables as CSV with `Accept: text/csv`"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn provider(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let report = move || analytics::provider(&state, &principal, &id, q);
    answer(&headers, report, |report| {
        let mut head = header_row();
        head[1] = "patientsSeen".into();
        head.insert(2, "visits".into());
        let line = |period: &str, f: &medrelay_protocol::analytics::ProviderFigures| {
            let mut line = figures_row(period, &f.patients_seen.to_string(), &f.appointments);
            line.insert(2, f.visits.to_string());
            line
        };
        let mut table = vec![head];
        for row in &report.rows {
            table.push(line(&row.period, &row.figures));
        }
        table.push(line("total", &report.totals));
        table.push(Vec::new());
        table.push(names(&[
            "weekday",
            "hour",
            "bookedMinutes",
            "availableMinutes",
            "utilisation",
        ]));
        for h in &report.utilisation {
            table.push(vec![
                format!("{:?}", h.weekday), // its wire name: `Monday`…
                h.hour.to_string(),
                h.booked_minutes.to_string(),
                h.available_minutes.to_string(),
                cell(h.utilisation),
            ]);
        }
        table
    })
    .await
}

/// Notifications per bucket, channel and category, by the clinic day they
/// were made: sent, delivered, failed (expired apart), failed attempts,
/// acknowledged in-app, delivery and acknowledgement rates (admins).
#[utoipa::path(get, path = "/api/analytics/notifications", tag = "analytics",
    params(PeriodQuery),
    responses((status = 200, body = NotificationsReport, description = "JSON; the same table as CSV with `Accept: text/csv`"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn notifications(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let report = move || analytics::notifications(&state, &principal, q);
    answer(&headers, report, |report| {
        let line = |period: &str, channel: &str, category: &str, f: &NotificationFigures| {
            vec![
                period.to_owned(),
                channel.to_owned(),
                category.to_owned(),
                f.notifications.to_string(),
                f.sent.to_string(),
                f.delivered.to_string(),
                f.failed.to_string(),
                f.expired.to_string(),
                f.failed_attempts.to_string(),
                f.acknowledged.to_string(),
                cell(f.delivery_rate),
                cell(f.acknowledgement_rate),
            ]
        };
        let mut table = vec![names(&[
            "period",
            "channel",
            "category",
            "notifications",
            "sent",
            "delivered",
            "failed",
            "expired",
            "failedAttempts",
            "acknowledged",
            "deliveryRate",
            "acknowledgementRate",
        ])];
        for row in &report.rows {
            table.push(line(&row.period, &row.channel, &row.category, &row.figures));
        }
        table.push(line("total", "", "", &report.totals));
        table
    })
    .await
}

/// Makes the report off the async workers (tens of milliseconds of store
/// reads) and answers it as JSON, or as the CSV `table` makes of it when
/// asked.
async fn answer<T: serde::Serialize + Send + 'static>(
    headers: &HeaderMap,
    report: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    table: impl FnOnce(&T) -> Vec<Vec<String>>,
) -> Result<Response, AppError> {
    let report = tokio::task::spawn_blocking(report)
        .await
        .map_err(AppError::internal)??;
    Ok(if wants_csv(headers) {
        csv(&table(&report))
    } else {
        axum::Json(report).into_response()
    })
}

/// Whether the caller asked for CSV (and did not prefer JSON first).
fn wants_csv(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        // `q=0` says "not this one".
        .filter(|v| {
            !v.split(';').skip(1).any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>() == Ok(0.0))
            })
        })
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    for media in accept {
        match media.as_str() {
            "text/csv" => return true,
            "application/json" => return false,
            _ => {}
        }
    }
    false
}

/// A header line.
fn names(head: &[&str]) -> Vec<String> {
    head.iter().map(|&name| name.to_owned()).collect()
}

/// A figure that may be absent (a rate with nothing to divide by): empty.
fn cell<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn header_row() -> Vec<String> {
    names(&[
        "period",
        "providerId",
        "booked",
        "completed",
        "cancelled",
        "lateCancellations",
        "noShows",
        "noShowRate",
        "bookedMinutes",
        "availableMinutes",
        "fillRate",
        "medianLeadHours",
        "reschedules",
        "waitlistFills",
    ])
}

fn figures_row(period: &str, provider: &str, f: &AppointmentFigures) -> Vec<String> {
    vec![
        period.to_owned(),
        provider.to_owned(),
        f.booked.to_string(),
        f.completed.to_string(),
        f.cancelled.to_string(),
        f.late_cancellations.to_string(),
        f.no_shows.to_string(),
        cell(f.no_show_rate),
        f.booked_minutes.to_string(),
        f.available_minutes.to_string(),
        cell(f.fill_rate),
        cell(f.median_lead_hours),
        f.reschedules.to_string(),
        f.waitlist_fills.to_string(),
    ]
}

/// RFC 4180 text: fields with a comma, quote or line break are quoted,
/// quotes doubled; lines end in CRLF. A field a spreadsheet would take for a
/// formula (`=`, `+`, `-`, `@` first, and not a number such as a negative
/// rate) gets a leading `'`.
fn csv(table: &[Vec<String>]) -> Response {
    let mut out = String::new();
    for row in table {
        for (i, f) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let guard = f.starts_with(['=', '+', '-', '@']) && f.parse::<f64>().is_err();
            let quoted = f.contains([',', '"', '\n', '\r']);
            if quoted {
                out.push('"');
            }
            if guard {
                out.push('\'');
            }
            if quoted {
                out.push_str(&f.replace('"', "\"\""));
            } else {
                out.push_str(f);
            }
            if quoted {
                out.push('"');
            }
        }
        out.push_str("\r\n");
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
}
