//! Sign-up, login, refresh, logout, lock-out.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn signup_login_refresh_logout_then_old_tokens_fail() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/auth/signup",
            json!({"username": "Alice", "email": "alice@example.org", "password": PASSWORD,
                   "name": "Alice A", "dob": "1980-01-01",
                   "contactInfo": {"phone": "+1234567890", "email": "alice@example.org"},
                   "medicalHistory": {"allergies": ["Penicillin"], "chronicConditions": []}}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["role"], "patient");
    assert_eq!(body["status"], "Registered");
    let patient_id = body["patientId"].as_str().unwrap().to_owned();

    // Usernames are case-insensitive.
    let first = app.login("alice", PASSWORD).await;
    let (status, me) = app.get("/api/auth/me", Some(&first.token)).await;
    assert_eq!(status, 200);
    assert_eq!(me["patientId"], patient_id);
    let (status, record) = app
        .get(&format!("/api/patients/{patient_id}"), Some(&first.token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["medicalHistory"]["allergies"][0], "Penicillin");
    assert_eq!(record["dob"], "1980-01-01");

    // Refresh rotates: the new pair works.
    let (status, rotated) = app.refresh(json!(first.refresh)).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["status"], "Authenticated");
    let second_token = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/auth/me", Some(&second_token)).await.0, 200);

    // Logout ends the session: the access token and its refresh family die.
    let (status, body) = app
        .post("/api/auth/logout", json!({"token": second_token}), None)
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Logged out")));
    let (status, body) = app.get("/api/auth/me", Some(&second_token)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(
        app.get("/api/auth/me", Some(&first.token)).await.0,
        401,
        "same session"
    );
    let (status, _) = app.refresh(json!(rotated["refreshToken"])).await;
    assert_eq!(status, 401);
    // A new login starts a new, working session.
    let again = app.login("alice", PASSWORD).await;
    assert_eq!(app.get("/api/auth/me", Some(&again.token)).await.0, 200);
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    let app = spawn_app().await;
    let p = app.signup_patient("bob").await;
    let (status, rotated) = app.refresh(json!(p.tokens.refresh)).await;
    assert_eq!(status, 200);
    // The stolen (already used) refresh token is presented again.
    let (status, body) = app.refresh(json!(p.tokens.refresh)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "token_reused");
    // Every token of that session is now refused, including the legitimate rotation.
    for token in [&p.tokens.token, rotated["token"].as_str().unwrap()] {
        assert_eq!(app.get("/api/auth/me", Some(token)).await.0, 401);
    }
    let (status, _) = app.refresh(json!(rotated["refreshToken"])).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn tokens_of_one_kind_are_not_accepted_as_the_other() {
    let app = spawn_app().await;
    let p = app.signup_patient("carol").await;
    assert_eq!(
        app.get("/api/auth/me", Some(&p.tokens.refresh)).await.0,
        401
    );
    let (status, _) = app.refresh(json!(p.tokens.token)).await;
    assert_eq!(status, 401);
    assert_eq!(app.get("/api/auth/me", Some("not.a.jwt")).await.0, 401);
}

#[tokio::test]
async fn taken_usernames_and_bad_fields_are_named() {
    let app = spawn_app().await;
    app.signup_patient("dave").await;
    let (status, body) = app
        .post(
            "/api/auth/signup",
            json!({"username": "DAVE", "email": "d@example.org", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["field"], "username");
    let cases = [
        (
            json!({"username": "ab", "email": "a@example.org", "password": PASSWORD}),
            400,
            "username",
        ),
        (
            json!({"username": "abc def", "email": "a@example.org", "password": PASSWORD}),
            400,
            "username",
        ),
        (
            json!({"username": "abcd", "email": "nope", "password": PASSWORD}),
            400,
            "email",
        ),
        (
            json!({"username": "abcd", "email": "a@example.org", "password": "short"}),
            422,
            "password",
        ),
        (
            json!({"username": "abcd", "email": "a@example.org", "password": PASSWORD, "dob": "1980-13-01"}),
            400,
            "dob",
        ),
        (
            json!({"username": "abcd", "email": "a@example.org", "password": PASSWORD, "dob": "2999-01-01"}),
            422,
            "dob",
        ),
        (
            json!({"username": "abcd", "email": "a@example.org", "password": PASSWORD,
                "contactInfo": {"phone": "12"}}),
            400,
            "contactInfo.phone",
        ),
        (
            json!({"username": "abcd", "email": "a@example.org", "password": PASSWORD, "isAdmin": true}),
            400,
            "isAdmin",
        ),
        (
            json!({"username": "abcd", "email": "a@example.org"}),
            400,
            "password",
        ),
    ];
    for (body, expected, field) in cases {
        let (status, reply) = app.post("/api/auth/signup", body.clone(), None).await;
        assert_eq!(status, expected, "{body} -> {reply}");
        let named = reply["error"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
            + reply["error"]["message"].as_str().unwrap_or_default();
        assert!(
            named.contains(field),
            "{body} -> {reply} should name {field}"
        );
    }
}

#[tokio::test]
async fn doctor_accounts_need_an_admin_and_appear_in_the_directory() {
    let app = spawn_app().await;
    let doctor = json!({"username": "drjane", "email": "jane@example.org", "password": PASSWORD,
        "role": "doctor", "name": "Dr. Jane Doe", "specialization": "Cardiology",
        "timeZone": "Europe/Berlin", "providerId": "prov001"});
    let (status, _) = app.post("/api/auth/signup", doctor.clone(), None).await;
    assert_eq!(status, 401);
    let patient = app.signup_patient("erin").await;
    let (status, _) = app
        .post(
            "/api/auth/signup",
            doctor.clone(),
            Some(&patient.tokens.token),
        )
        .await;
    assert_eq!(status, 403);
    let admin = app.admin_token().await;
    let mut bad_zone = doctor.clone();
    bad_zone["timeZone"] = json!("Mars/Olympus");
    let (status, body) = app.post("/api/auth/signup", bad_zone, Some(&admin)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("timeZone"))
    );
    let (status, body) = app
        .post("/api/auth/signup", doctor.clone(), Some(&admin))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["role"].as_str(), body["providerId"].as_str()),
        (Some("doctor"), Some("prov001"))
    );
    let mut same_id = doctor;
    same_id["username"] = json!("drjohn");
    let (status, body) = app.post("/api/auth/signup", same_id, Some(&admin)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (409, Some("providerId"))
    );

    let (status, list) = app.get("/api/doctors", Some(&patient.tokens.token)).await;
    assert_eq!(status, 200);
    let doctors = list["doctors"].as_array().unwrap();
    assert_eq!(doctors.len(), 1);
    assert_eq!(doctors[0]["name"], "Dr. Jane Doe");
    assert_eq!(doctors[0]["timeZone"], "Europe/Berlin");
    // A doctor reads only the records of patients in their care (least
    // privilege; `patients::doctors_see_the_patients_in_their_care`).
    let dr = app.login("drjane", PASSWORD).await;
    let (status, _) = app
        .get(
            &format!("/api/patients/{}", patient.patient_id),
            Some(&dr.token),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_username_for_a_while() {
    let app = spawn_app_with(|s| {
        s.auth.max_failed_logins = 3;
        s.auth.lockout_secs = 60;
    })
    .await;
    app.signup_patient("frank").await;
    for _ in 0..3 {
        let (status, body) = app
            .post(
                "/api/auth/login",
                json!({"username": "frank", "password": "wrong-password"}),
                None,
            )
            .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["message"], "invalid username or password");
    }
    let response = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "frank", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        429,
        "even the right password waits out the lock"
    );
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let (_, body) = read(response).await;
    assert_eq!(body["error"]["code"], "locked_out");
    // Other accounts are unaffected; unknown users get the same answer as wrong passwords.
    app.login(crate::helpers::ADMIN.0, crate::helpers::ADMIN.1)
        .await;
    let (status, body) = app
        .post(
            "/api/auth/login",
            json!({"username": "nobody", "password": "whatever1"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (401, Some("invalid username or password"))
    );
}

#[tokio::test]
async fn a_login_with_a_name_sign_up_refuses_is_422_naming_the_field() {
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 2).await;
    let long = "x".repeat(60);
    let huge = "y".repeat(60_000);
    for name in [long.as_str(), huge.as_str(), "ab", "has space", "émile"] {
        let (status, body) = app
            .post(
                "/api/auth/login",
                json!({"username": name, "password": "whatever1"}),
                None,
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "invalid_field");
        assert_eq!(body["error"]["field"], "username");
    }
    // Such logins are not failures of any account: none is locked by them,
    // however many there are, and valid names still count as before.
    for _ in 0..3 {
        app.post(
            "/api/auth/login",
            json!({"username": long, "password": "whatever1"}),
            None,
        )
        .await;
    }
    app.login(ADMIN.0, ADMIN.1).await;
    let (status, _) = app
        .post(
            "/api/auth/login",
            json!({"username": " ROOT ", "password": ADMIN.1}),
            None,
        )
        .await;
    assert_eq!(
        status, 200,
        "names are trimmed and case-insensitive as before"
    );
}

#[tokio::test]
async fn a_full_failed_login_table_still_locks_a_guessed_name() {
    let app = spawn_app_with(|s| {
        s.auth.max_failed_logins = 2;
        s.auth.failed_login_table = 2;
    })
    .await;
    app.signup_patient("frank").await;
    let fail = |name: String| {
        let app = &app;
        async move {
            app.post(
                "/api/auth/login",
                json!({"username": name, "password": "wrong-password"}),
                None,
            )
            .await
            .0
        }
    };
    // The table fills with made-up (but valid) names...
    for i in 0..3 {
        assert_eq!(fail(format!("madeup{i}")).await, 401);
    }
    // ...and a guessed name, with more made-up ones in between, still locks.
    assert_eq!(fail("frank".into()).await, 401);
    assert_eq!(fail("madeup9".into()).await, 401);
    assert_eq!(fail("frank".into()).await, 401);
    assert_eq!(fail("madeup10".into()).await, 401);
    assert_eq!(fail("madeup11".into()).await, 401);
    let (status, body) = app
        .post(
            "/api/auth/login",
            json!({"username": "frank", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("locked_out"))
    );
}
