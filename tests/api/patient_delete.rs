//! Deleting a patient: hidden at once (410), future appointments cancelled,
//! sessions ended, restorable within the retention, purged after it (the
//! test moves the clock instead of waiting six years).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_deleted_patient_is_hidden_restorable_then_purged() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dr = doctor_account(&app, &admin, "drcare", "prv_care").await;
    let alice = app.signup_patient("alice").await;
    let date = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(3.days())
        .unwrap();
    let (status, booked) = app
        .post(
            "/api/appointments",
            json!({"patientId": alice.patient_id, "providerId": "prv_care",
                   "appointmentDate": date.to_string(), "timeSlot": "11:00"}),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{booked}");
    let appointment = booked["appointmentId"].as_str().unwrap().to_owned();
    let (status, record) = app
        .post(
            "/api/records",
            json!({"patientId": alice.patient_id, "date": "2026-11-01", "diagnosis": "Migraine"}),
            Some(&dr),
        )
        .await;
    assert_eq!(status, 201, "{record}");
    let record_path = format!("/api/records/{}", record["recordId"].as_str().unwrap());
    let path = format!("/api/patients/{}", alice.patient_id);

    let response = app
        .http
        .delete(app.url(&path))
        .bearer_auth(&dr)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "only admins delete");
    let response = app
        .http
        .delete(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "Deleted", "patientId": alice.patient_id})
    );

    // Hidden at once.
    let (status, body) = app.get(&path, Some(&admin)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("gone"))
    );
    let (status, _) = app.get(&record_path, Some(&dr)).await;
    assert_eq!(status, 410);
    let (status, _) = app
        .get(
            &format!("/api/records?patientId={}", alice.patient_id),
            Some(&dr),
        )
        .await;
    assert_eq!(status, 410);
    let (status, _) = app
        .put(&record_path, json!({"treatment": "Rest"}), &dr)
        .await;
    assert_eq!(status, 410, "no edits to a deleted patient's records");
    let (_, list) = app.get("/api/patients", Some(&admin)).await;
    assert!(!list.to_string().contains(&alice.patient_id), "{list}");
    // The appointment ahead is cancelled, as any cancellation.
    let (_, apt) = app
        .get(&format!("/api/appointments/{appointment}"), Some(&admin))
        .await;
    assert_eq!(apt["status"], "Cancelled", "{apt}");
    // Her sessions ended, and she cannot start another.
    let (status, _) = app.get("/api/auth/me", Some(&alice.tokens.token)).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            json!({"refreshToken": alice.tokens.refresh}),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(status, 403);

    // Restorable within the retention.
    let (status, body) = app
        .post(&format!("{path}/restore"), json!({}), Some(&admin))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get(&path, Some(&admin)).await;
    assert_eq!(status, 200);
    let (status, _) = app.get(&record_path, Some(&dr)).await;
    assert_eq!(status, 200);
    app.login("alice", PASSWORD).await;
    let (status, _) = app
        .post(&format!("{path}/restore"), json!({}), Some(&admin))
        .await;
    assert_eq!(status, 409, "not deleted");

    // Deleted again, then past the retention (six years by default): purged.
    let response = app
        .http
        .delete(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let later = Timestamp::now() + SignedDuration::from_hours(24 * 2191);
    let (status, _) = app
        .post(
            "/api/test-faults/clock",
            json!({"to": later.to_string()}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 204);
    let purged = eventually(Duration::from_secs(10), || async {
        app.get(&path, Some(&admin)).await.0 == 404
    })
    .await;
    assert!(purged, "the sweep purged the patient");
    let (status, _) = app.get(&record_path, Some(&admin)).await;
    assert_eq!(status, 404, "the records went with the patient");
    let (status, _) = app
        .post(&format!("{path}/restore"), json!({}), Some(&admin))
        .await;
    assert_eq!(status, 404, "too late to restore");
    // The audit trail stays: it holds no patient data.
    let (_, audit) = app
        .get(
            &format!("/api/audit?patientId={}", alice.patient_id),
            Some(&admin),
        )
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"D"), "{audit}");
}
