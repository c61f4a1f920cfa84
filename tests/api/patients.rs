//! Patients (issue: patients and records): both seed shapes, duplicates,
//! partial updates, who sees whom, list paging and search, and PHI sealed
//! at rest.

use jiff::Timestamp;
use jiff::ToSpan;
use serde_json::{Value, json};

use crate::helpers::*;

async fn register(app: &TestApp, token: &str, body: Value) -> String {
    let (status, reply) = app.post("/api/patients", body, Some(token)).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "Registered");
    reply["patientId"].as_str().unwrap().to_owned()
}

fn healthcare_shape() -> Value {
    json!({"name": "Zebulon Quartermain", "dob": "1961-04-12",
           "contactInfo": {"phone": "+15550100777", "email": "zebulon@example.org"},
           "medicalHistory": {"allergies": ["penicillin"], "chronicConditions": ["asthma"]}})
}

#[tokio::test]
async fn both_seed_shapes_round_trip() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let a = register(&app, &admin, healthcare_shape()).await;
    let (status, got) = app.get(&format!("/api/patients/{a}"), Some(&admin)).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["patientId"], a.as_str());
    assert_eq!(got["name"], "Zebulon Quartermain");
    assert_eq!(got["dob"], "1961-04-12");
    assert_eq!(got["contactInfo"]["phone"], "+15550100777");
    assert_eq!(got["medicalHistory"]["allergies"], json!(["penicillin"]));
    assert!(got.get("address").is_none(), "{got}");

    let b = register(
        &app,
        &admin,
        json!({"firstName": "Ottilie", "lastName": "Brandvold", "dateOfBirth": "1990-02-03",
               "address": {"street": "1 Fjord Road", "city": "Bergen", "state": "Vestland", "zipCode": "5003"},
               "phoneNumber": "+4755000111", "email": "ottilie@example.org"}),
    )
    .await;
    let (_, got) = app.get(&format!("/api/patients/{b}"), Some(&admin)).await;
    assert_eq!(got["name"], "Ottilie Brandvold");
    assert_eq!(got["dob"], "1990-02-03");
    assert_eq!(
        got["contactInfo"],
        json!({"phone": "+4755000111", "email": "ottilie@example.org"})
    );
    assert_eq!(got["address"]["zipCode"], "5003");
}

#[tokio::test]
async fn duplicates_are_refused_unless_allowed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let first = register(&app, &admin, healthcare_shape()).await;
    // Same name (other case and spacing), date of birth and phone.
    let mut again = healthcare_shape();
    again["name"] = json!("  zebulon   QUARTERMAIN ");
    again["contactInfo"] = json!({"phone": "+15550100777"});
    let (status, body) = app.post("/api/patients", again.clone(), Some(&admin)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["existingId"], first.as_str(), "{body}");
    let (status, body) = app
        .post("/api/patients?allowDuplicate=true", again, Some(&admin))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(body["patientId"], first.as_str());
    // The refusal is in the existing patient's audit trail: who learned the id.
    let (_, audit) = app
        .get(&format!("/api/audit?patientId={first}"), Some(&admin))
        .await;
    let refused = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "C" && e["outcome"] == "failed")
        .count();
    assert_eq!(refused, 1, "{audit}");
    // Another date of birth is another person.
    let mut other = healthcare_shape();
    other["dob"] = json!("1962-04-12");
    register(&app, &admin, other).await;
}

#[tokio::test]
async fn updates_change_only_what_is_sent() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = register(&app, &admin, healthcare_shape()).await;
    let path = format!("/api/patients/{id}");
    let (status, body) = app
        .put(
            &path,
            json!({"contactInfo": {"phone": "+15550100888"}}),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"patientId": id, "status": "Updated"}));
    let (_, got) = app.get(&path, Some(&admin)).await;
    assert_eq!(got["contactInfo"], json!({"phone": "+15550100888"}));
    assert_eq!(got["name"], "Zebulon Quartermain");
    assert_eq!(
        got["medicalHistory"]["chronicConditions"],
        json!(["asthma"])
    );
    // The search follows the change.
    let (_, found) = app
        .get("/api/patients?phone=%2B15550100888", Some(&admin))
        .await;
    assert_eq!(found["patients"][0]["patientId"], id.as_str(), "{found}");
    let (_, found) = app
        .get("/api/patients?phone=%2B15550100777", Some(&admin))
        .await;
    assert_eq!(found["patients"], json!([]), "{found}");
}

#[tokio::test]
async fn patients_change_their_contact_details_but_not_their_history() {
    let app = spawn_app().await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let own = format!("/api/patients/{}", alice.patient_id);
    let (status, body) = app
        .put(
            &own,
            json!({"email": "alice@new.example.org", "address": {"city": "Oslo"}}),
            &alice.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .put(
            &own,
            json!({"medicalHistory": {"allergies": []}}),
            &alice.tokens.token,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("medicalHistory")
    );
    let (_, got) = app.get(&own, Some(&alice.tokens.token)).await;
    assert_eq!(got["contactInfo"]["email"], "alice@new.example.org");
    assert_eq!(got["address"]["city"], "Oslo");
    // Someone else's record: 403 whether or not it exists.
    for other in [
        format!("/api/patients/{}", bob.patient_id),
        "/api/patients/pat_nobody".into(),
    ] {
        let (status, _) = app.get(&other, Some(&alice.tokens.token)).await;
        assert_eq!(status, 403);
        let (status, _) = app
            .put(
                &other,
                json!({"email": "x@example.org"}),
                &alice.tokens.token,
            )
            .await;
        assert_eq!(status, 403);
    }
    // A patient lists only themselves and registers no one.
    let (_, list) = app.get("/api/patients", Some(&alice.tokens.token)).await;
    let ids: Vec<&str> = list["patients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["patientId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [alice.patient_id.as_str()]);
    let (status, _) = app
        .post(
            "/api/patients",
            healthcare_shape(),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn doctors_see_the_patients_in_their_care() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dr = doctor_account(&app, &admin, "drcare", "prv_care").await;
    let other_dr = doctor_account(&app, &admin, "drother", "prv_other").await;
    let mine = register(&app, &dr, healthcare_shape()).await;
    let date = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(2.days())
        .unwrap();
    let (status, body) = app
        .post(
            "/api/appointments",
            json!({"patientId": mine, "providerId": "prv_care",
                   "appointmentDate": date.to_string(), "timeSlot": "10:00"}),
            Some(&dr),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/api/patients/{mine}");
    let (status, _) = app.get(&path, Some(&dr)).await;
    assert_eq!(status, 200);
    let (status, body) = app.get(&path, Some(&other_dr)).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = app
        .put(&path, json!({"dob": "1961-04-13"}), &other_dr)
        .await;
    assert_eq!(status, 403);
    let (status, _) = app.put(&path, json!({"dob": "1961-04-13"}), &dr).await;
    assert_eq!(status, 200);
    let (_, list) = app.get("/api/patients", Some(&dr)).await;
    assert_eq!(list["patients"].as_array().unwrap().len(), 1, "{list}");
    let (_, list) = app.get("/api/patients", Some(&other_dr)).await;
    assert_eq!(list["patients"], json!([]), "{list}");
    // Outside their care a doctor may break the glass, with a reason: the
    // read is allowed, and the patient sees it flagged in their access log.
    let (status, got) = app
        .http
        .get(app.url(&path))
        .bearer_auth(&other_dr)
        .header("x-access-reason", "unconscious in the ER, allergies needed")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map(|s| (s, ()))
        .unwrap();
    assert_eq!(status, 200, "{got:?}");
    let (_, log) = app.get(&format!("{path}/access-log"), Some(&admin)).await;
    let glass: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["emergency"] == true)
        .collect();
    assert_eq!(glass.len(), 1, "{log}");
    assert_eq!(
        glass[0]["reason"],
        "unconscious in the ER, allergies needed"
    );
    assert_eq!(glass[0]["outcome"], "success");
    // The glass opens reads only.
    let (status, _) = app
        .http
        .put(app.url(&path))
        .bearer_auth(&other_dr)
        .header("x-access-reason", "emergency")
        .json(&json!({"dob": "1961-04-14"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 403);
    // Search answers only within the care relationship, too.
    let (_, list) = app
        .get("/api/patients?name=Zebulon%20Quartermain", Some(&other_dr))
        .await;
    assert_eq!(list["patients"], json!([]), "{list}");
}

#[tokio::test]
async fn lists_page_by_cursor_and_search_exactly() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            register(
                &app,
                &admin,
                json!({"name": format!("Page Person {i}"), "dob": "1970-01-0{}".replace("{}", &(i + 1).to_string()),
                       "contactInfo": {"email": format!("page{i}@example.org")}}),
            )
            .await,
        );
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut path = "/api/patients?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&path, Some(&admin)).await;
        assert_eq!(status, 200, "{page}");
        for p in page["patients"].as_array().unwrap() {
            seen.push(p["patientId"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/api/patients?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (_, found) = app
        .get("/api/patients?email=PAGE3@example.org", Some(&admin))
        .await;
    assert_eq!(found["patients"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["patients"][0]["name"], "Page Person 3");
    let (_, found) = app
        .get(
            "/api/patients?name=page%20person%202&dob=1970-01-03",
            Some(&admin),
        )
        .await;
    assert_eq!(found["patients"][0]["name"], "Page Person 2", "{found}");
    let (_, found) = app
        .get(
            "/api/patients?name=page%20person%202&dob=1970-01-04",
            Some(&admin),
        )
        .await;
    assert_eq!(found["patients"], json!([]));
    let (_, found) = app
        .get("/api/patients?name=Page%20Person", Some(&admin))
        .await;
    assert_eq!(found["patients"], json!([]), "exact match only");
}

#[tokio::test]
async fn bad_patient_bodies_name_the_field() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let long = "x".repeat(201);
    let cases = [
        (json!({"dob": "1961-04-12"}), 422, "name"),
        (json!({"name": "A", "dob": "2999-01-01"}), 422, "dob"),
        (json!({"name": "A", "dob": "12/04/1961"}), 400, "dob"),
        (json!({"name": long}), 422, "name"),
        (
            json!({"name": "A", "firstName": "B", "lastName": "C"}),
            422,
            "firstName",
        ),
        (json!({"firstName": "B"}), 422, "lastName"),
        (json!({"name": "A", "ssn": "1"}), 400, "ssn"),
        (
            json!({"name": "A", "contactInfo": {"phone": "555"}}),
            400,
            "contactInfo.phone",
        ),
        (
            json!({"name": "A", "medicalHistory": {"allergies": vec!["a"; 101]}}),
            422,
            "medicalHistory.allergies",
        ),
        (
            json!({"name": "A", "address": {"city": long}}),
            422,
            "address.city",
        ),
        (json!({"name": 7}), 400, "name"),
    ];
    for (body, status, field) in cases {
        let (got, reply) = app.post("/api/patients", body.clone(), Some(&admin)).await;
        assert_eq!(got, status, "{body} -> {reply}");
        assert_eq!(reply["error"]["field"], field, "{body} -> {reply}");
    }
    let (status, reply) = app.get("/api/patients?limit=0", Some(&admin)).await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (422, Some("limit"))
    );
    let (status, reply) = app.get("/api/patients?dob=yesterday", Some(&admin)).await;
    assert_eq!(status, 400, "{reply}");
    let (status, _) = app.get("/api/patients", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn patient_data_is_sealed_at_rest() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = register(
        &app,
        &admin,
        json!({"name": "Philippa Xanthoudakis", "dob": "1977-07-07",
               "contactInfo": {"phone": "+15559871234", "email": "xanthoudakis@example.org"},
               "address": {"street": "77 Quillfeather Lane"},
               "medicalHistory": {"allergies": ["quinoxaline"], "chronicConditions": ["sarcoidosis"]}}),
    )
    .await;
    app.signup_patient_with(
        "signer",
        json!({"name": "Wilhelmina Ostrowskaja", "contactInfo": {"phone": "+15554443322"}}),
    )
    .await;
    // A reason stated for an access is free text about the patient too.
    let response = app
        .http
        .get(app.url(&format!("/api/patients/{id}")))
        .bearer_auth(&admin)
        .header("x-access-reason", "Zygomatic fracture follow-up")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let data_dir = app.data_dir.clone();
    app.stop().await;
    let secrets = [
        "Zygomatic",
        "Philippa",
        "Xanthoudakis",
        "xanthoudakis",
        "5559871234",
        "Quillfeather",
        "quinoxaline",
        "sarcoidosis",
        "Wilhelmina",
        "Ostrowskaja",
        "5554443322",
        "1977-07-07",
    ];
    let files = files_at_top_of(&data_dir);
    // The control: what is not PHI (a username) is found, so the search
    // reads where the data lives.
    assert!(files.iter().any(|(_, bytes)| contains(bytes, "signer")));
    for (path, bytes) in &files {
        for secret in secrets {
            assert!(
                !contains(bytes, secret),
                "{secret} is readable in {}",
                path.display()
            );
        }
    }
    // And the data is all there after a restart.
    let app = app.restart(|_| {}).await;
    let admin = app.admin_token().await;
    let (status, got) = app.get(&format!("/api/patients/{id}"), Some(&admin)).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got["medicalHistory"]["chronicConditions"],
        json!(["sarcoidosis"])
    );
}

#[tokio::test]
async fn medical_history_changes_are_versioned() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = register(&app, &admin, healthcare_shape()).await;
    let path = format!("/api/patients/{id}");
    let (status, _) = app
        .put(&path, json!({"medicalHistory": {"allergies": ["penicillin", "latex"], "chronicConditions": ["asthma"]}}), &admin)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .put(
            &path,
            json!({"contactInfo": {"email": "z@example.org"}}),
            &admin,
        )
        .await;
    assert_eq!(status, 200);
    let (status, history) = app.get(&format!("{path}/history"), Some(&admin)).await;
    assert_eq!(status, 200, "{history}");
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(
        versions.len(),
        2,
        "a contact change is no history version: {history}"
    );
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(
        versions[0]["medicalHistory"]["allergies"],
        json!(["penicillin"])
    );
    assert_eq!(
        versions[1]["medicalHistory"]["allergies"],
        json!(["penicillin", "latex"])
    );
    assert!(versions[1]["by"].as_str().is_some());
    // A patient reads their own history and no one else's.
    let alice = app.signup_patient("alice").await;
    let (status, own) = app
        .get(
            &format!("/api/patients/{}/history", alice.patient_id),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(
        own["versions"].as_array().unwrap().len(),
        1,
        "sign-up made version 1"
    );
    let (status, _) = app
        .get(&format!("{path}/history"), Some(&alice.tokens.token))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_search_never_names_a_patient_the_caller_may_not_see() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let jane = app
        .signup_patient_with("jane", json!({"name": "Jane Doe", "dob": "1990-09-09"}))
        .await;
    // Another Jane Doe, registered at the desk, whose id sorts either way.
    for _ in 0..3 {
        let (status, _) = app
            .post(
                "/api/patients?allowDuplicate=true",
                json!({"name": "Jane Doe", "dob": "1990-09-09"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 201);
    }
    let mut path = "/api/patients?name=Jane%20Doe&limit=1".to_owned();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (status, page) = app.get(&path, Some(&jane.tokens.token)).await;
        assert_eq!(status, 200, "{page}");
        let text = page.to_string();
        seen.extend(
            page["patients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["patientId"].as_str().unwrap().to_owned()),
        );
        for id in text.split('"').filter(|t| t.starts_with("pat_")) {
            assert_eq!(id, jane.patient_id, "only her own id appears: {text}");
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/api/patients?name=Jane%20Doe&limit=1&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![jane.patient_id.clone()]);
}
