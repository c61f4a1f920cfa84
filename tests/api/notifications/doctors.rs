//! Notices to doctors: when a change of their hours leaves appointments
//! outside them, the doctor's account gets one e-mail listing them (and
//! each patient their own notice).

use serde_json::json;

use super::{WAIT, clinic, in_days, patient};
use crate::helpers::*;

#[tokio::test]
async fn a_doctor_hears_once_which_appointments_their_new_hours_leave_out() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let (status, body) = app
        .post(
            "/api/auth/signup",
            json!({"username": "drmail", "email": "drmail@example.org", "password": PASSWORD,
                   "role": "doctor", "providerId": "prv_mail", "name": "Dr. Mail",
                   "timeZone": "UTC"}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .put(
            "/api/providers/prv_mail",
            json!({"availability": all_day_availability()}),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let fay = patient(&app, "fay", "+4915112345672").await;
    let day = in_days(3);
    for time in ["10:00", "11:00"] {
        let (status, body) = app
            .post(
                "/api/appointments",
                json!({"patientId": fay.patient_id, "providerId": "prv_mail",
                       "appointmentDate": day.to_string(), "timeSlot": time}),
                Some(&fay.tokens.token),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // The doctor takes that day off.
    let (status, body) = app
        .put(
            "/api/providers/prv_mail",
            json!({"exceptions": [{"date": day.to_string(), "slots": []}]}),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Fay hears of each appointment; the doctor once, of both.
    let mails = providers.smtp.wait_for(3, WAIT).await;
    let to_doctor: Vec<_> = mails
        .iter()
        .filter(|m| m.to == vec!["drmail@example.org".to_owned()])
        .collect();
    assert_eq!(to_doctor.len(), 1, "{mails:?}");
    let mail = to_doctor[0];
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("2 appointments need a new time")
    );
    let text = mail.text();
    assert!(text.contains(&format!("{day} 10:00 Patient fay")), "{text}");
    assert!(text.contains(&format!("{day} 11:00 Patient fay")), "{text}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let to_doctor = providers
        .smtp
        .received()
        .iter()
        .filter(|m| m.to == vec!["drmail@example.org".to_owned()])
        .count();
    assert_eq!(to_doctor, 1, "the notice is sent once");
}
