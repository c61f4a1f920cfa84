//! The clinic the booking benchmarks run against: 100 doctors open all
//! day, every day, and 200 patients, created over the real API.

use anyhow::{Context, ensure};
use futures_util::{StreamExt, stream};
use serde_json::json;

use crate::availability::all_day_availability;
use crate::booking::{DOCTORS, PATIENTS};
use crate::server::{ADMIN_PASSWORD, ADMIN_USER, Server};

/// How the doctors are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Doctors {
    /// Schedules only: nobody to notify of a booking.
    ProfilesOnly,
    /// Each schedule linked to a doctor account, so every booking also
    /// writes a notice to the doctor and sends them an e-mail.
    WithAccounts,
}

/// Logs in as the admin, creates the doctors and signs up the patients;
/// returns the admin's token and the patients' ids in order.
pub(crate) async fn setup(server: &Server) -> anyhow::Result<(String, Vec<String>)> {
    setup_with(server, Doctors::ProfilesOnly).await
}

/// [`setup`], with the doctors made as `doctors` says.
pub(crate) async fn setup_with(
    server: &Server,
    doctors: Doctors,
) -> anyhow::Result<(String, Vec<String>)> {
    let token = server.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let all_day = all_day_availability();
    eprintln!("schedule: setup: creating {DOCTORS} doctors ...");
    let token_ref = token.as_str();
    let all_day = &all_day;
    let mut created = stream::iter(0..DOCTORS)
        .map(|i| async move {
            let id = format!("prov{i:03}");
            if doctors == Doctors::ProfilesOnly {
                let body = json!({
                    "providerId": id, "name": format!("Dr {i}"),
                    "timeZone": "UTC", "slotMinutes": 5, "availability": all_day,
                });
                let (status, reply) = server
                    .post("/api/providers", &body, Some(token_ref))
                    .await?;
                ensure!(status == 201, "creating {id}: {status} {reply}");
                return Ok(());
            }
            let username = format!("doc{i:03}");
            let body = json!({
                "username": username, "email": format!("{username}@example.org"),
                "password": "bench-password-1", "role": "doctor", "providerId": id,
                "name": format!("Dr {i}"), "timeZone": "UTC",
            });
            let (status, reply) = server
                .post("/api/auth/signup", &body, Some(token_ref))
                .await?;
            ensure!(status == 201, "signing up {username}: {status} {reply}");
            let hours = json!({"slotMinutes": 5, "availability": all_day});
            let (status, reply) = server
                .put(&format!("/api/providers/{id}"), &hours, token_ref)
                .await?;
            ensure!(status == 200, "opening {id}: {status} {reply}");
            Ok(())
        })
        .buffer_unordered(8);
    while let Some(done) = created.next().await {
        done?;
    }
    drop(created);

    eprintln!("schedule: setup: signing up {PATIENTS} patients, 4 at a time ...");
    let signed_up: Vec<anyhow::Result<String>> = stream::iter(0..PATIENTS)
        .map(|i| async move {
            let username = format!("bench{i:04}");
            let body = json!({
                "username": username, "email": format!("{username}@example.org"),
                "password": "bench-password-1",
            });
            let (status, reply) = server.post("/api/auth/signup", &body, None).await?;
            ensure!(status == 201, "signing up {username}: {status} {reply}");
            reply["patientId"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("signing up {username}: no patientId in {reply}"))
        })
        .buffered(4)
        .collect()
        .await;
    let patients = signed_up.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok((token, patients))
}
