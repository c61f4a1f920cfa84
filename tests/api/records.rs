//! Medical records: written by the doctor in care, read by the patient,
//! every version kept, deletion a tombstone (410), sealed at rest, audited.

use serde_json::{Value, json};

use crate::care::{CareClinic, care_clinic};
use crate::helpers::*;

type Clinic = CareClinic;

async fn clinic() -> Clinic {
    care_clinic(|_| {}).await
}

fn seed_record(patient: &str) -> Value {
    json!({"patientId": patient, "date": "2026-11-20", "diagnosis": "Hypertension",
           "treatment": "Lifestyle changes", "prescriptions": ["Lisinopril 10mg"]})
}

async fn create(c: &Clinic, body: Value) -> String {
    let (status, reply) = c.app.post("/api/records", body, Some(&c.dr)).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "Created");
    reply["recordId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_doctor_in_care_writes_and_the_patient_reads() {
    let c = clinic().await;
    let mut body = seed_record(&c.alice.patient_id);
    body["recordId"] = json!("rec_seed_1");
    let id = create(&c, body).await;
    assert_eq!(id, "rec_seed_1");
    let path = format!("/api/records/{id}");
    let (status, got) = c.app.get(&path, Some(&c.alice.tokens.token)).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["patientId"], c.alice.patient_id.as_str());
    assert_eq!(got["date"], "2026-11-20");
    assert_eq!(got["diagnosis"], "Hypertension");
    assert_eq!(got["prescriptions"], json!(["Lisinopril 10mg"]));
    assert_eq!(got["version"], 1);
    for (who, status) in [
        (&c.bob.tokens.token, 403),
        (&c.other_dr, 403),
        (&c.admin, 200),
        (&c.dr, 200),
    ] {
        let (got, body) = c.app.get(&path, Some(who)).await;
        assert_eq!(got, status, "{body}");
    }
    // Only the doctor in care writes, and only doctors.
    for who in [&c.other_dr, &c.admin, &c.alice.tokens.token] {
        let (status, body) = c
            .app
            .post("/api/records", seed_record(&c.alice.patient_id), Some(who))
            .await;
        assert_eq!(status, 403, "{body}");
    }
    // The patient's list; someone else's list is refused.
    let (status, list) = c.app.get("/api/records", Some(&c.alice.tokens.token)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["records"].as_array().unwrap().len(), 1);
    let (status, _) = c
        .app
        .get(
            &format!("/api/records?patientId={}", c.alice.patient_id),
            Some(&c.bob.tokens.token),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = c.app.get("/api/records", Some(&c.dr)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("patientId"))
    );
}

#[tokio::test]
async fn every_version_is_kept_and_a_deleted_record_is_gone() {
    let c = clinic().await;
    let id = create(&c, seed_record(&c.alice.patient_id)).await;
    let path = format!("/api/records/{id}");
    let (status, body) = c
        .app
        .put(&path, json!({"treatment": "Diet and exercise"}), &c.dr)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"recordId": id, "status": "Updated"}));
    let (_, got) = c.app.get(&path, Some(&c.dr)).await;
    assert_eq!(got["treatment"], "Diet and exercise");
    assert_eq!(got["diagnosis"], "Hypertension", "unsent fields stay");
    assert_eq!(got["version"], 2);
    // Only the author or an admin changes it.
    let (status, _) = c
        .app
        .put(&path, json!({"treatment": "x"}), &c.other_dr)
        .await;
    assert_eq!(status, 403);
    let (status, _) = c
        .app
        .put(&path, json!({"prescriptions": []}), &c.admin)
        .await;
    assert_eq!(status, 200);
    let (status, body) = c
        .app
        .put(&path, json!({"patientId": c.bob.patient_id}), &c.dr)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("patientId"))
    );

    let response = c
        .app
        .http
        .delete(c.app.url(&path))
        .bearer_auth(&c.dr)
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "Deleted", "recordId": id}));
    let (status, body) = c.app.get(&path, Some(&c.alice.tokens.token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("gone"))
    );
    let (status, _) = c.app.put(&path, json!({"treatment": "x"}), &c.dr).await;
    assert_eq!(status, 410);
    let (_, list) = c.app.get("/api/records", Some(&c.alice.tokens.token)).await;
    assert_eq!(list["records"], json!([]));

    let (status, history) = c
        .app
        .get(&format!("{path}/history"), Some(&c.alice.tokens.token))
        .await;
    assert_eq!(status, 200, "{history}");
    let versions = history["versions"].as_array().unwrap();
    let summary: Vec<(u64, &str, Value)> = versions
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["change"].as_str().unwrap(),
                v["changed"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                1,
                "created",
                json!(["date", "diagnosis", "treatment", "prescriptions"])
            ),
            (2, "updated", json!(["treatment"])),
            (3, "updated", json!(["prescriptions"])),
            (4, "deleted", json!([])),
        ]
    );
    assert!(versions[0]["by"].as_str().is_some());
}

#[tokio::test]
async fn bad_records_name_the_field() {
    let c = clinic().await;
    let p = c.alice.patient_id.as_str();
    let long = "x".repeat(2001);
    let cases = [
        (
            json!({"patientId": p, "date": "2999-01-01", "diagnosis": "A"}),
            422,
            "date",
        ),
        (
            json!({"patientId": p, "date": "2026-01-01", "diagnosis": "  "}),
            422,
            "diagnosis",
        ),
        (
            json!({"patientId": p, "date": "2026-01-01"}),
            422,
            "diagnosis",
        ),
        (json!({"patientId": p, "diagnosis": "A"}), 422, "date"),
        (
            json!({"date": "2026-01-01", "diagnosis": "A"}),
            422,
            "patientId",
        ),
        (
            json!({"patientId": p, "date": "2026-01-01", "diagnosis": long}),
            422,
            "diagnosis",
        ),
        (
            json!({"patientId": p, "date": "2026-01-01", "diagnosis": "A", "prescriptions": vec!["p"; 51]}),
            422,
            "prescriptions",
        ),
        (
            json!({"patientId": p, "date": "2026-01-01", "diagnosis": "A", "prescriptions": [""]}),
            422,
            "prescriptions",
        ),
        (
            json!({"patientId": "pat_nobody", "date": "2026-01-01", "diagnosis": "A"}),
            422,
            "patientId",
        ),
        (
            json!({"patientId": p, "date": "2026-01-01", "diagnosis": "A", "icd": "I10"}),
            400,
            "icd",
        ),
        (
            json!({"patientId": p, "date": "01/01/2026", "diagnosis": "A"}),
            400,
            "date",
        ),
    ];
    for (body, status, field) in cases {
        let (got, reply) = c.app.post("/api/records", body.clone(), Some(&c.dr)).await;
        assert_eq!(got, status, "{body} -> {reply}");
        assert_eq!(reply["error"]["field"], field, "{body} -> {reply}");
    }
    let mut taken = seed_record(p);
    taken["recordId"] = json!("rec_once");
    create(&c, taken.clone()).await;
    let (status, reply) = c.app.post("/api/records", taken, Some(&c.dr)).await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (409, Some("recordId"))
    );
    let (status, _) = c.app.get("/api/records/a.b", Some(&c.dr)).await;
    assert_eq!(status, 422);
    let (status, _) = c.app.get("/api/records/rec_none", Some(&c.dr)).await;
    assert_eq!(status, 404);
    let (status, _) = c.app.get("/api/records/rec_none", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn lists_filter_by_date_and_page() {
    let c = clinic().await;
    for day in 1..=5 {
        let mut body = seed_record(&c.alice.patient_id);
        body["date"] = json!(format!("2026-10-0{day}"));
        body["recordId"] = json!(format!("rec_day{day}"));
        create(&c, body).await;
    }
    let q = format!(
        "/api/records?patientId={}&from=2026-10-02&to=2026-10-04",
        c.alice.patient_id
    );
    let (_, list) = c.app.get(&q, Some(&c.dr)).await;
    let ids: Vec<&str> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["recordId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rec_day2", "rec_day3", "rec_day4"]);
    let mut seen = Vec::new();
    let mut path = format!("/api/records?patientId={}&limit=2", c.alice.patient_id);
    loop {
        let (status, page) = c.app.get(&path, Some(&c.admin)).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["recordId"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => {
                path = format!(
                    "/api/records?patientId={}&limit=2&after={next}",
                    c.alice.patient_id
                )
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["rec_day1", "rec_day2", "rec_day3", "rec_day4", "rec_day5"]
    );
}

#[tokio::test]
async fn records_are_sealed_at_rest_and_every_access_is_audited() {
    let mut c = clinic().await;
    let body = json!({"patientId": c.alice.patient_id, "date": "2026-11-01",
                      "diagnosis": "Xerodermatic vasculopathy", "treatment": "Quarterblood infusion",
                      "prescriptions": ["Zanthoprazine 5mg"]});
    let id = create(&c, body).await;
    let (status, _) = c
        .app
        .get(&format!("/api/records/{id}"), Some(&c.alice.tokens.token))
        .await;
    assert_eq!(status, 200);
    let (status, _) = c
        .app
        .get(&format!("/api/records/{id}"), Some(&c.bob.tokens.token))
        .await;
    assert_eq!(status, 403);
    let (_, page) = c
        .app
        .get(
            &format!("/api/audit?patientId={}", c.alice.patient_id),
            Some(&c.admin),
        )
        .await;
    let on_record: Vec<(String, String)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity"]["resourceType"] == "MedicalRecord")
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [("C", "success"), ("R", "success"), ("R", "denied")];
    assert_eq!(
        on_record,
        expected.map(|(a, o)| (a.to_owned(), o.to_owned())),
        "{page}"
    );

    let data = c.app.data_dir.clone();
    c.app.stop().await;
    for (path, bytes) in files_at_top_of(&data) {
        for secret in [
            "Xerodermatic",
            "vasculopathy",
            "Quarterblood",
            "Zanthoprazine",
        ] {
            assert!(
                !contains(&bytes, secret),
                "{secret} is readable in {}",
                path.display()
            );
        }
    }
}
