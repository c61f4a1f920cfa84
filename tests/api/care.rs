//! A clinic where one doctor has a patient in their care and another has
//! none: the set-up of the tests of who may read and write patient data.

use medrelay::config::Settings;
use serde_json::json;

use crate::helpers::*;

/// A clinic for access tests: an admin, Dr. Care (`prv_care`, who has an
/// appointment with Alice, so Alice is in their care), Dr. Other
/// (`prv_other`, who sees no one), and two patients, Alice and Bob.
pub struct CareClinic {
    pub app: TestApp,
    pub admin: String,
    pub dr: String,
    pub other_dr: String,
    pub alice: Patient,
    pub bob: Patient,
}

/// A [`CareClinic`] on a server whose settings `tweak` changed.
pub async fn care_clinic(tweak: impl FnOnce(&mut Settings)) -> CareClinic {
    let app = spawn_app_with(tweak).await;
    let admin = app.admin_token().await;
    let dr = doctor_account(&app, &admin, "drcare", "prv_care").await;
    let other_dr = doctor_account(&app, &admin, "drother", "prv_other").await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let date = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::ToSpan::days(2))
        .unwrap();
    let (status, body) = app
        .post(
            "/api/appointments",
            json!({"patientId": alice.patient_id, "providerId": "prv_care",
                   "appointmentDate": date.to_string(), "timeSlot": "09:00"}),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    CareClinic {
        app,
        admin,
        dr,
        other_dr,
        alice,
        bob,
    }
}
