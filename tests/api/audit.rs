//! The audit trail of patient data: an entry for every read, write, search
//! and refusal; a read's entry durable before its answer; the patient's
//! access log; and `admin verify-audit` finding a changed entry.

use redb::ReadableTable;
use serde_json::{Value, json};

use crate::helpers::*;

async fn register(app: &TestApp, token: &str, name: &str) -> String {
    let (status, body) = app
        .post(
            "/api/patients",
            json!({"name": name, "dob": "1950-01-01"}),
            Some(token),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["patientId"].as_str().unwrap().to_owned()
}

/// The audit entries about `patient`, oldest first.
async fn entries_of(app: &TestApp, admin: &str, patient: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/api/audit?patientId={patient}"), Some(admin))
        .await;
    assert_eq!(status, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_access_and_refusal_is_recorded_with_who_how_and_what() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let alice = app.signup_patient("alice").await;
    let id = register(&app, &admin, "Audrey Ledger").await;
    let path = format!("/api/patients/{id}");

    let response = app
        .http
        .get(app.url(&path))
        .bearer_auth(&admin)
        .header("user-agent", "ward-terminal/7")
        .header("x-request-id", "req-audit-read")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = app
        .put(
            &path,
            json!({"contactInfo": {"phone": "+15550001111"}}),
            &admin,
        )
        .await;
    assert_eq!(status, 200);
    // A patient probing someone else's record: refused, and recorded.
    let (status, _) = app.get(&path, Some(&alice.tokens.token)).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .get("/api/patients?name=Audrey%20Ledger", Some(&admin))
        .await;
    assert_eq!(status, 200);

    let entries = entries_of(&app, &admin, &id).await;
    let summary: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("C", "success"),
        ("R", "success"),
        ("U", "success"),
        ("R", "denied"),
        ("E", "success"),
    ];
    assert_eq!(
        summary,
        expected.map(|(a, o)| (a.to_owned(), o.to_owned())),
        "{entries:#?}"
    );
    let read = &entries[1];
    assert_eq!(read["entity"]["resourceType"], "Patient");
    assert_eq!(read["entity"]["resourceId"], id.as_str());
    assert_eq!(read["agent"]["role"], "admin");
    assert_eq!(read["agent"]["userAgent"], "ward-terminal/7");
    assert_eq!(read["agent"]["clientIp"], "127.0.0.1");
    assert!(
        read["agent"]["tokenId"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(
        read["source"],
        json!({"channel": "rest", "requestId": "req-audit-read"})
    );
    assert_eq!(entries[3]["agent"]["userId"], alice.user_id.as_str());
    // The search is recorded by the kinds of its criteria, never their values.
    assert_eq!(entries[4]["entity"]["detail"], "search by name");
    assert!(!entries[4].to_string().contains("Audrey"), "{}", entries[4]);
    assert!(!entries.iter().any(|e| e.to_string().contains("5550001111")));

    // Only admins read the audit log, and a refused attempt is recorded too.
    let (status, _) = app.get("/api/audit", Some(&alice.tokens.token)).await;
    assert_eq!(status, 403);
    let (status, page) = app.get("/api/audit?action=E&limit=500", Some(&admin)).await;
    assert_eq!(status, 200);
    let audit_reads = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity"]["resourceType"] == "AuditEvent")
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(audit_reads, ["success", "denied"], "{page}");
}

#[tokio::test]
async fn a_patient_sees_who_opened_their_record_and_no_one_elses_log() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let alice_record = format!("/api/patients/{}", alice.patient_id);
    let (status, _) = app
        .http
        .get(app.url(&alice_record))
        .bearer_auth(&admin)
        .header("x-access-reason", "insurance query from the front desk")
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 200);
    let (status, _) = app.get(&alice_record, Some(&bob.tokens.token)).await;
    assert_eq!(status, 403);

    let (status, log) = app
        .get(
            &format!("{alice_record}/access-log"),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let admin_read = entries
        .iter()
        .find(|e| e["role"] == "admin" && e["action"] == "R")
        .unwrap_or_else(|| panic!("the admin's read is listed: {log}"));
    assert_eq!(admin_read["reason"], "insurance query from the front desk");
    assert_eq!(admin_read["emergency"], false);
    let bob_try = entries
        .iter()
        .find(|e| e["userId"] == bob.user_id.as_str())
        .unwrap_or_else(|| panic!("bob's refused attempt is listed: {log}"));
    assert_eq!(bob_try["outcome"], "denied");

    // Bob may not read Alice's log; admins may.
    let (status, _) = app
        .get(
            &format!("{alice_record}/access-log"),
            Some(&bob.tokens.token),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .get(&format!("{alice_record}/access-log"), Some(&admin))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.get(&format!("{alice_record}/access-log"), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_reads_entry_is_durable_before_its_answer_arrives() {
    // Checkpoints far apart: the entry survives only through the redo log.
    let (_dir, data) = data_with_admin().await;
    let env = FAR_CHECKPOINTS;
    let server = Process::start(&data, &env);
    let app = server.app(&data);
    let admin = app.admin_token().await;
    let id = register(&app, &admin, "Durable Reader").await;
    let response = app
        .http
        .get(app.url(&format!("/api/patients/{id}")))
        .bearer_auth(&admin)
        .header("x-request-id", "req-before-kill")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // SIGKILL the moment the answer is in: no shutdown, no flush.
    server.kill();

    let server = Process::start(&data, &env);
    let app = server.app(&data);
    let admin = app.admin_token().await;
    let entries = entries_of(&app, &admin, &id).await;
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "R" && e["source"]["requestId"] == "req-before-kill"),
        "{entries:#?}"
    );
    server.kill();
}

#[tokio::test]
async fn verify_audit_names_the_first_changed_entry() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    for name in ["Chain One", "Chain Two", "Chain Three"] {
        register(&app, &admin, name).await;
    }
    let data = app.data_dir.clone();
    app.stop().await;
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_medrelay"))
            .args(["admin", "verify-audit", "--data-dir"])
            .arg(&data)
            .env("MEDRELAY__LOG__FORMAT", "json")
            .output()
            .unwrap()
    };
    let intact = verify();
    assert!(intact.status.success(), "{intact:?}");
    assert!(
        String::from_utf8_lossy(&intact.stdout).contains("3 entries"),
        "{intact:?}"
    );

    // Someone edits entry 2 in the file, byte by byte, behind the server.
    {
        let db = redb::Database::open(data.join("medrelay.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit_log");
            let mut log = txn.open_table(def).unwrap();
            let mut value = log.get(2).unwrap().unwrap().value().to_vec();
            let at = value.len() - 3;
            value[at] ^= 0x01;
            log.insert(2, value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let broken = verify();
    assert!(!broken.status.success(), "{broken:?}");
    let said = String::from_utf8_lossy(&broken.stderr);
    assert!(said.contains("broken at entry 2"), "{said}");
}
