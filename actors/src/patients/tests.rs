use jiff::Timestamp;
use medrelay_protocol::profile::{ContactInfo, MedicalHistory};
use medrelay_protocol::{Email, PatientId};
use serde::{Deserialize, Serialize};

use super::*;
use crate::phi::Vault;
use crate::store::{Record, Table, WriteBatch};
use crate::test_support::store_and_system;

/// A profile as releases before encryption wrote it (schema version 1).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Version1 {
    patient_id: PatientId,
    name: String,
    contact_info: ContactInfo,
    medical_history: MedicalHistory,
    created_at: Timestamp,
}

impl Record for Version1 {
    const TABLE: Table = Table::Patients;
    const VERSION: u16 = 1;
}

fn profile(id: &str, name: &str) -> PatientRecord {
    PatientRecord {
        patient_id: PatientId::parse(id).unwrap(),
        user_id: None,
        name: name.into(),
        dob: Some("1950-05-05".parse().unwrap()),
        contact_info: ContactInfo {
            phone: None,
            email: Some(Email::parse("p@example.org").unwrap()),
        },
        address: None,
        medical_history: MedicalHistory {
            allergies: vec!["latex".into()],
            chronic_conditions: Vec::new(),
        },
        created_at: Timestamp::now(),
        updated_at: None,
    }
}

#[tokio::test]
async fn profiles_written_in_the_clear_are_sealed_once() {
    let (_dir, store, _system) = store_and_system();
    let vault = Vault::ephemeral();
    let mut batch = WriteBatch::new();
    batch.put(
        "pat_old",
        &Version1 {
            patient_id: PatientId::parse("pat_old").unwrap(),
            name: "Old Timer".into(),
            contact_info: ContactInfo::default(),
            medical_history: MedicalHistory::default(),
            created_at: Timestamp::now(),
        },
    );
    write(
        &mut batch,
        &vault,
        None,
        &profile("pat_new", "New Comer"),
        false,
    );
    store.write(batch).await.unwrap();

    let before = store.get::<StoredPatient>("pat_old").unwrap().unwrap();
    assert!(before.plain.is_some() && before.sealed.is_none());
    assert_eq!(seal_legacy(&store, &vault).await.unwrap(), 1);
    assert_eq!(seal_legacy(&store, &vault).await.unwrap(), 0, "idempotent");
    let after = store.get::<StoredPatient>("pat_old").unwrap().unwrap();
    assert!(after.plain.is_none() && after.profile.is_some());
    let old = PatientId::parse("pat_old").unwrap();
    let opened = load(&store, &vault, &old).unwrap().unwrap();
    assert_eq!(opened.name, "Old Timer");
    // Sealing also indexed it.
    let found = find(&store, &vault, Search::Name("old timer"), None, 10).unwrap();
    assert_eq!(found, [old]);
}

#[tokio::test]
async fn a_field_copied_onto_another_patient_does_not_open() {
    let (_dir, store, _system) = store_and_system();
    let vault = Vault::ephemeral();
    let mut batch = WriteBatch::new();
    write(&mut batch, &vault, None, &profile("pat_a", "Alpha"), false);
    write(&mut batch, &vault, None, &profile("pat_b", "Bravo"), false);
    store.write(batch).await.unwrap();
    let a = store.get::<StoredPatient>("pat_a").unwrap().unwrap();
    let mut b = store.get::<StoredPatient>("pat_b").unwrap().unwrap();
    b.profile = a.profile.clone();
    let mut batch = WriteBatch::new();
    batch.put("pat_b", &b);
    store.write(batch).await.unwrap();
    let err = load(&store, &vault, &PatientId::parse("pat_b").unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("patients/pat_b.profile"),
        "the error names the record and field: {err}"
    );
}

#[tokio::test]
async fn profiles_sealed_field_by_field_are_sealed_together_at_start_up() {
    let (_dir, store, _system) = store_and_system();
    let vault = Vault::ephemeral();
    let patient = profile("pat_v2", "Field Byfield");
    let id = &patient.patient_id;
    // As version 2 wrote it: each field sealed on its own.
    let mut stored = seal(&vault, &patient);
    stored.profile = None;
    stored.sealed = Some(SealedFields {
        name: vault.seal_json(place(id, "name"), &patient.name),
        dob: patient.dob.map(|d| vault.seal_json(place(id, "dob"), &d)),
        contact_info: vault.seal_json(place(id, "contactInfo"), &patient.contact_info),
        address: None,
        medical_history: vault.seal_json(place(id, "medicalHistory"), &patient.medical_history),
    });
    stored.deleted_at = Some(Timestamp::UNIX_EPOCH);
    let mut batch = WriteBatch::new();
    batch.put("pat_v2", &stored);
    store.write(batch).await.unwrap();
    assert!(
        store
            .get::<StoredPatient>("pat_v2")
            .unwrap()
            .unwrap()
            .stale(vault.current())
    );

    assert_eq!(seal_legacy(&store, &vault).await.unwrap(), 1);
    assert_eq!(seal_legacy(&store, &vault).await.unwrap(), 0, "idempotent");
    let after = store.get::<StoredPatient>("pat_v2").unwrap().unwrap();
    assert!(after.profile.is_some() && after.sealed.is_none());
    assert!(!after.stale(vault.current()));
    assert_eq!(
        after.deleted_at,
        Some(Timestamp::UNIX_EPOCH),
        "still deleted"
    );
    let opened = open(&vault, after).unwrap();
    assert_eq!(opened.name, "Field Byfield");
    assert_eq!(opened.medical_history.allergies, ["latex"]);
}

#[tokio::test]
async fn registering_the_same_person_twice_collides_in_the_writer() {
    let (_dir, store, _system) = store_and_system();
    let vault = Vault::ephemeral();
    let mut first = WriteBatch::new();
    write(
        &mut first,
        &vault,
        None,
        &profile("pat_1", "Same Person"),
        true,
    );
    let mut second = WriteBatch::new();
    write(
        &mut second,
        &vault,
        None,
        &profile("pat_2", "same  person"),
        true,
    );
    let (a, b) = tokio::join!(store.write(first), store.write(second));
    let err = match (a, b) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
        other => panic!("exactly one must win: {other:?}"),
    };
    let winner = duplicate_of(&store, &err).unwrap().unwrap();
    assert!(["pat_1", "pat_2"].contains(&winner.as_str()));
}
