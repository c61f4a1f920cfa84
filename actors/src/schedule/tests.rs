//! The schedule through real actors and a real store: the hand-over between
//! two actors of one doctor, a property test of the cells, the start-up
//! repair and the loaded window.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use medrelay_protocol::schedule::{
    AppointmentStatus, BookAppointment, ClockTime, RequestedStatus, SlotTime, UpdateAppointment,
};
use medrelay_protocol::{PatientId, ProviderId};

use super::messages::{Book, GetBoard, ParkRetirement, Update, UpdateProvider};
use super::rules::cells;
use super::state::State;
use super::*;
use crate::system::{ActorSystem, Registry};
use crate::test_support::{
    Rng, create_doctor, every_day, register_patient, schedule_registry, store_and_system,
};

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    schedules: Registry<ScheduleActor>,
    system: Arc<ActorSystem>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.system.stop();
    }
}

fn world() -> World {
    let (dir, store, system) = store_and_system();
    let schedules = schedule_registry(&store, &system);
    World {
        _dir: dir,
        store,
        schedules,
        system,
    }
}

async fn doctor(store: &Store, id: &str) -> ProviderId {
    create_doctor(store, id, "UTC", &["08:00-12:00"]).await
}

async fn patient(store: &Store, name: &str) -> PatientId {
    register_patient(store, name).await.patient_id.unwrap()
}

fn day(offset: i64) -> Date {
    Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(offset.days())
        .unwrap()
}

fn book(patient: &PatientId, provider: &ProviderId, date: Date, time: &str) -> Book {
    Book {
        request: BookAppointment {
            hold_id: None,
            patient_id: patient.clone(),
            provider_id: provider.clone(),
            appointment_date: date,
            time_slot: ClockTime::parse(time).unwrap(),
            status: None,
        },
        by: None,
    }
}

fn board_of(date: Date) -> GetBoard {
    GetBoard {
        from: Some(date),
        to: Some(date),
    }
}

#[tokio::test]
async fn a_revived_actor_with_a_successor_forwards_instead_of_serving_stale_state() {
    let w = world();
    let d1 = doctor(&w.store, "d1").await;
    let (alice, bob) = (
        patient(&w.store, "alice").await,
        patient(&w.store, "bob").await,
    );
    let date = day(10);
    let old = w.schedules.get("d1");
    old.send(board_of(date)).await.unwrap().unwrap();

    // The actor retires and is held on its thread; a lookup meanwhile
    // starts its successor, as a concurrent request would.
    let (retired, parked) = std::sync::mpsc::sync_channel(1);
    let (resume, held) = std::sync::mpsc::sync_channel(1);
    old.do_send(ParkRetirement {
        retired,
        resume: held,
    });
    tokio::task::spawn_blocking(move || parked.recv().unwrap())
        .await
        .unwrap();
    let successor = w.schedules.get("d1");
    assert!(successor != old);
    resume.send(()).unwrap();
    // A late message revives the old actor (we hold its address).
    old.send(board_of(date)).await.unwrap().unwrap();

    // The successor books; the revived actor must answer with that booking.
    w.schedules
        .send("d1", book(&alice, &d1, date, "09:00"))
        .await
        .unwrap()
        .unwrap();
    let seen = old.send(board_of(date)).await.unwrap().unwrap();
    let nine = seen
        .slots
        .iter()
        .find(|s| s.slot.time_slot.to_string() == "09:00")
        .unwrap();
    assert!(
        nine.booked.is_some(),
        "the revived actor served stale state"
    );
    assert_eq!(
        seen.seq,
        w.store
            .channel_head(&medrelay_protocol::Channel::Board(d1.clone()))
            .unwrap()
    );
    assert_eq!(
        old.send(book(&bob, &d1, date, "09:00")).await.unwrap(),
        Err(ScheduleError::SlotTaken)
    );
    assert_eq!(w.schedules.len(), 1);
}

/// What the live appointments cover: cell key → appointment, per table.
/// Panics if two live appointments share a cell (an overlap).
fn expected_cells(store: &Store) -> [BTreeMap<String, String>; 2] {
    let mut out = [BTreeMap::new(), BTreeMap::new()];
    for (_, a) in store.scan::<AppointmentRecord>(None, usize::MAX).unwrap() {
        if !a.status.holds_slot() {
            continue;
        }
        let owners = [a.provider_id.as_str(), a.patient_id.as_str()];
        for (map, owner) in out.iter_mut().zip(owners) {
            for cell in cells(owner, &a.slot) {
                let id = a.appointment_id.to_string();
                if let Some(other) = map.insert(cell.clone(), id.clone()) {
                    panic!("{id} and {other} overlap at {cell}");
                }
            }
        }
    }
    out
}

fn stored_cells(store: &Store) -> [BTreeMap<String, String>; 2] {
    let provider = store.scan::<ProviderCell>(None, usize::MAX).unwrap();
    let patient = store.scan::<PatientCell>(None, usize::MAX).unwrap();
    [
        provider
            .into_iter()
            .map(|(k, c)| (k, c.appointment_id.to_string()))
            .collect(),
        patient
            .into_iter()
            .map(|(k, c)| (k, c.appointment_id.to_string()))
            .collect(),
    ]
}

#[tokio::test]
async fn cells_always_equal_what_live_appointments_cover() {
    let w = world();
    let doctors = [doctor(&w.store, "d1").await, doctor(&w.store, "d2").await];
    let mut people = Vec::new();
    for name in ["pat0", "pat1", "pat2", "pat3"] {
        people.push(patient(&w.store, name).await);
    }
    let times: Vec<String> = (0..20)
        .map(|i| format!("{:02}:{:02}", 8 + i * 15 / 60, i * 15 % 60))
        .collect();
    let hours = [["08:00-12:00"], ["09:00-11:00"], ["08:00-10:00"]];
    for seed in [7_u64, 42, 1_000_003] {
        let mut rng = Rng(seed);
        for step in 0..150 {
            let live: Vec<AppointmentRecord> = w
                .store
                .scan::<AppointmentRecord>(None, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(_, a)| a)
                .filter(|a| a.status == AppointmentStatus::Scheduled)
                .collect();
            let doctor = &doctors[rng.below(2)];
            let date = day(10 + rng.below(3) as i64);
            let time = ClockTime::parse(&times[rng.below(times.len())]).unwrap();
            let op = rng.below(10);
            let outcome = match (op, live.get(rng.below(live.len()))) {
                (0..=4, _) | (_, None) => {
                    let who = &people[rng.below(people.len())];
                    let mut msg = book(who, doctor, date, "08:00");
                    msg.request.time_slot = time;
                    w.schedules
                        .send(doctor.as_str(), msg)
                        .await
                        .unwrap()
                        .map(|_| ())
                }
                (5..=7, Some(a)) => {
                    let status = [
                        None,
                        Some(RequestedStatus::Cancelled),
                        Some(RequestedStatus::NoShow),
                    ][op - 5];
                    let change = match status {
                        None => UpdateAppointment {
                            appointment_date: Some(date),
                            time_slot: Some(time),
                            status: None,
                        },
                        Some(s) => UpdateAppointment {
                            status: Some(s),
                            ..Default::default()
                        },
                    };
                    let msg = Update {
                        appointment_id: a.appointment_id.clone(),
                        change,
                        by: None,
                    };
                    w.schedules
                        .send(a.provider_id.as_str(), msg)
                        .await
                        .unwrap()
                        .map(|_| ())
                }
                (_, Some(_)) => {
                    let patch = super::messages::ProviderPatch {
                        slot_minutes: Some([15, 30, 45, 60][rng.below(4)]),
                        availability: Some(every_day(&hours[rng.below(hours.len())])),
                        ..Default::default()
                    };
                    w.schedules
                        .send(doctor.as_str(), UpdateProvider { patch })
                        .await
                        .unwrap()
                        .map(|_| ())
                }
            };
            match outcome {
                Ok(())
                | Err(
                    ScheduleError::SlotTaken
                    | ScheduleError::PatientConflict
                    | ScheduleError::OutsideAvailability(_)
                    | ScheduleError::InvalidTransition(_),
                ) => {}
                Err(e) => panic!("seed {seed} step {step}: unexpected {e}"),
            }
            assert_eq!(
                stored_cells(&w.store),
                expected_cells(&w.store),
                "seed {seed} step {step}"
            );
        }
    }
}

/// Writes an appointment as an older release did: record and patient
/// cells, no doctor's cells.
async fn legacy(
    store: &Store,
    id: &str,
    doctor: &ProviderId,
    who: &PatientId,
    start: Timestamp,
    status: AppointmentStatus,
) {
    let start_local = start.to_zoned(jiff::tz::TimeZone::UTC);
    let record = AppointmentRecord {
        appointment_id: medrelay_protocol::schedule::AppointmentId::parse(id).unwrap(),
        provider_id: doctor.clone(),
        patient_id: who.clone(),
        slot: SlotTime {
            date: start_local.date(),
            time_slot: ClockTime::parse(&start_local.strftime("%H:%M").to_string()).unwrap(),
            start,
            end: start + SignedDuration::from_mins(30),
        },
        status,
        history: Vec::new(),
        history_dropped: 0,
        reschedules_dropped: 0,
        from_waitlist: false,
        needs_reschedule: false,
    };
    let mut batch = WriteBatch::new();
    batch.put(id, &record);
    batch.put(
        format!("{doctor}/{id}"),
        &ProviderAppointment(IndexEntry {}),
    );
    for cell in cells(who.as_str(), &record.slot) {
        batch.put(
            cell,
            &PatientCell {
                appointment_id: record.appointment_id.clone(),
            },
        );
    }
    store.write(batch).await.unwrap();
}

#[tokio::test]
async fn the_start_up_repair_gives_doctors_their_cells_once_and_flags_overlaps() {
    let w = world();
    let d1 = doctor(&w.store, "d1").await;
    let (alice, bob) = (
        patient(&w.store, "alice").await,
        patient(&w.store, "bob").await,
    );
    let nine = day(10)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        + SignedDuration::from_hours(9);
    legacy(
        &w.store,
        "apt_a",
        &d1,
        &alice,
        nine,
        AppointmentStatus::Scheduled,
    )
    .await;
    // Overlaps apt_a for the same doctor: the defect the repair meets.
    legacy(
        &w.store,
        "apt_b",
        &d1,
        &bob,
        nine + SignedDuration::from_mins(15),
        AppointmentStatus::Scheduled,
    )
    .await;
    // A no-show that kept the patient's cells.
    legacy(
        &w.store,
        "apt_c",
        &d1,
        &bob,
        nine + SignedDuration::from_hours(2),
        AppointmentStatus::NoShow,
    )
    .await;

    let report = migrate::provider_cells(&w.store).await.unwrap();
    assert_eq!(
        report,
        migrate::CellRepair {
            reserved: 1,
            flagged: 1,
            freed: 1
        }
    );
    let b = w.store.get::<AppointmentRecord>("apt_b").unwrap().unwrap();
    assert!(b.needs_reschedule);
    assert_eq!(
        b.slot.start,
        nine + SignedDuration::from_mins(15),
        "never moved"
    );
    let [provider, patient] = stored_cells(&w.store);
    assert_eq!(provider.len(), 6);
    assert!(provider.values().all(|id| id == "apt_a"));
    assert!(!patient.values().any(|id| id == "apt_c"));
    // Once is enough: the second start does nothing.
    assert_eq!(
        migrate::provider_cells(&w.store).await.unwrap(),
        migrate::CellRepair::default()
    );
}

#[tokio::test]
async fn the_loaded_state_holds_only_the_window() {
    let w = world();
    let d1 = doctor(&w.store, "d1").await;
    let alice = patient(&w.store, "alice").await;
    let now = Timestamp::now();
    let old = now - SignedDuration::from_hours(24 * 30);
    let recent = now - SignedDuration::from_hours(2);
    let ahead = now + SignedDuration::from_hours(24 * 30);
    for (id, at) in [
        ("apt_old", old),
        ("apt_recent", recent),
        ("apt_ahead", ahead),
    ] {
        legacy(&w.store, id, &d1, &alice, at, AppointmentStatus::Scheduled).await;
    }
    migrate::provider_cells(&w.store).await.unwrap();
    let state = State::load(&w.store, "d1", now).unwrap();
    let mut held: Vec<String> = state
        .booked
        .all()
        .map(|a| a.appointment_id.to_string())
        .collect();
    held.sort();
    assert_eq!(held, ["apt_ahead", "apt_recent"]);
    // The old one is still there for whoever asks the store.
    assert_eq!(provider_appointments(&w.store, &d1).unwrap().len(), 3);
}

#[test]
fn history_actions_keep_the_names_stored_records_use() {
    use AppointmentStatus as S;
    for (action, name) in [
        (HistoryAction::Booked, "Booked"),
        (HistoryAction::Rescheduled, "Rescheduled"),
        (HistoryAction::NeedsReschedule, "NeedsReschedule"),
        (HistoryAction::RescheduleCleared, "RescheduleCleared"),
        (HistoryAction::Status(S::Cancelled), "Cancelled"),
        (HistoryAction::Status(S::CheckedIn), "CheckedIn"),
        (HistoryAction::Status(S::NoShow), "NoShow"),
    ] {
        let json = serde_json::to_string(&action).unwrap();
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<HistoryAction>(&json).unwrap(),
            action
        );
    }
    assert!(serde_json::from_str::<HistoryAction>("\"Teleported\"").is_err());
}
