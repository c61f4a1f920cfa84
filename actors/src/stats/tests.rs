//! The figures against a recount: random bookings, moves and status
//! changes through real schedule actors, two doctors' zones and a third
//! for the clinic; and the figures of single appointments.

use futures_util::future::join_all;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use medrelay_protocol::schedule::{
    AppointmentStatus, BookAppointment, ClockTime, HistoryAction, HistoryEntry, RequestedStatus,
    SlotTime, UpdateAppointment,
};
use medrelay_protocol::{PatientId, ProviderId};

use super::appointments::{self as a, figures};
use super::rebuild;
use crate::schedule::messages::{Book, ProviderPatch, Update, UpdateProvider};
use crate::schedule::{AppointmentRecord, ScheduleError};
use crate::store::{Figures, Store, StoreConfig, WriteBatch};
use crate::test_support::{
    Rng, create_doctor, every_day, register_patient, schedule_registry, store_and_system_with,
};

fn kept(store: &Store) -> std::collections::BTreeMap<String, Figures> {
    rebuild::kept(store).unwrap()
}

/// One change the walk sends a doctor's actor.
enum Change {
    Book(Book),
    Update(Update),
    Hours(UpdateProvider),
}

async fn doctor(store: &Store, id: &str, zone: &str) -> ProviderId {
    create_doctor(store, id, zone, &["00:00-23:30"]).await
}

#[tokio::test]
async fn figures_equal_a_recount_after_10_000_random_changes_and_a_restart() {
    let config = StoreConfig {
        stats_zone: TimeZone::get("America/New_York").unwrap(),
        ..StoreConfig::default()
    };
    let (dir, store, system) = store_and_system_with(config.clone());
    let schedules = schedule_registry(&store, &system);
    let doctors = [
        doctor(&store, "d_utc", "UTC").await,
        doctor(&store, "d_berlin", "Europe/Berlin").await,
        doctor(&store, "d_york", "America/New_York").await,
    ];
    let mut people: Vec<PatientId> = Vec::new();
    for i in 0..12 {
        people.push(
            register_patient(&store, &format!("pat{i}"))
                .await
                .patient_id
                .unwrap(),
        );
    }
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let mut rng = Rng(0x5EED_CAFE);
    // Each doctor's appointments as the replies left them.
    let mut mine: Vec<Vec<AppointmentRecord>> = vec![Vec::new(); doctors.len()];
    let (mut done, rounds) = (0, 10_000 / doctors.len() + 1);
    for round in 0..rounds {
        // One change per doctor at a time, all doctors at once.
        let mut sends = Vec::new();
        for (d, doctor) in doctors.iter().enumerate() {
            let date = today.checked_add((rng.below(6) as i64).days()).unwrap();
            let time = ClockTime::from_minutes(u16::try_from(rng.below(47) * 30).unwrap());
            let op = rng.below(11);
            let target = if mine[d].is_empty() {
                None
            } else {
                Some(mine[d][rng.below(mine[d].len())].clone())
            };
            let (message, which) = match (op, target) {
                // New hours flag appointments (their history grows) but
                // move no figure.
                (10, Some(_)) => {
                    let hours = ["00:00-23:30", "06:00-12:00", "12:00-20:00"][rng.below(3)];
                    let patch = ProviderPatch {
                        availability: Some(every_day(&[hours])),
                        ..Default::default()
                    };
                    (Change::Hours(UpdateProvider { patch }), None)
                }
                (0..=3, _) | (_, None) => (
                    Change::Book(Book {
                        request: BookAppointment {
                            hold_id: None,
                            patient_id: people[rng.below(people.len())].clone(),
                            provider_id: doctor.clone(),
                            appointment_date: date,
                            time_slot: time,
                            status: None,
                        },
                        by: None,
                    }),
                    None,
                ),
                (4, Some(t)) => (
                    Change::Update(Update {
                        appointment_id: t.appointment_id.clone(),
                        change: UpdateAppointment {
                            appointment_date: Some(date),
                            time_slot: Some(time),
                            status: None,
                        },
                        by: None,
                    }),
                    Some(t.appointment_id),
                ),
                (_, Some(t)) => {
                    let status = [
                        RequestedStatus::Cancelled,
                        RequestedStatus::NoShow,
                        RequestedStatus::CheckedIn,
                        RequestedStatus::Completed,
                        RequestedStatus::Cancelled,
                    ][op - 5];
                    (
                        Change::Update(Update {
                            appointment_id: t.appointment_id.clone(),
                            change: UpdateAppointment {
                                status: Some(status),
                                ..Default::default()
                            },
                            by: None,
                        }),
                        Some(t.appointment_id),
                    )
                }
            };
            let schedules = &schedules;
            sends.push(async move {
                let reply = match message {
                    Change::Book(m) => schedules.send(doctor.as_str(), m).await.unwrap().map(Some),
                    Change::Update(m) => {
                        schedules.send(doctor.as_str(), m).await.unwrap().map(Some)
                    }
                    Change::Hours(m) => schedules
                        .send(doctor.as_str(), m)
                        .await
                        .unwrap()
                        .map(|_| None),
                };
                (d, which, reply)
            });
        }
        for (d, which, reply) in join_all(sends).await {
            done += 1;
            match reply {
                Ok(None) => {}
                Ok(Some(record)) => match which {
                    Some(id) => {
                        let slot = mine[d].iter_mut().find(|r| r.appointment_id == id).unwrap();
                        *slot = record;
                    }
                    None => mine[d].push(record),
                },
                Err(
                    ScheduleError::SlotTaken
                    | ScheduleError::PatientConflict
                    | ScheduleError::TooSoon(_)
                    | ScheduleError::OutsideAvailability(_)
                    | ScheduleError::InvalidTransition(_),
                ) => {}
                Err(e) => panic!("round {round}: unexpected {e}"),
            }
        }
        if round % 500 == 499 {
            assert_eq!(
                kept(&store),
                rebuild::recount(&store).unwrap(),
                "round {round}"
            );
        }
    }
    assert!(done >= 10_000);
    let booked: usize = mine.iter().map(Vec::len).sum();
    let late = kept(&store)
        .values()
        .map(|f| f.get(&a::LATE_CANCELLED).copied().unwrap_or(0))
        .sum::<i64>();
    let flagged = store
        .scan::<AppointmentRecord>(None, usize::MAX)
        .unwrap()
        .iter()
        .filter(|(_, a)| a.needs_reschedule)
        .count();
    assert!(
        booked > 1_000 && late > 0 && flagged > 0,
        "the walk covered too little: {booked} booked, {late} late, {flagged} flagged"
    );
    let live = kept(&store);
    assert_eq!(live, rebuild::recount(&store).unwrap());

    // A rebuild writes what was kept; a restart keeps it.
    assert_eq!(rebuild::rebuild(&store).await.unwrap().len(), live.len());
    assert_eq!(kept(&store), live);
    system.stop();
    store.close().await;
    let store = Store::open(
        &dir.path().join("t.redb"),
        config,
        crate::hub::EventHub::new(16),
    )
    .unwrap();
    assert_eq!(kept(&store), live);
    assert!(
        !rebuild::rebuild_if_stale(&store).await.unwrap(),
        "same zone: nothing to recount"
    );
    store.close().await;
}

fn appointment(start: Timestamp, booked_at: Timestamp) -> AppointmentRecord {
    let utc = start.to_zoned(TimeZone::UTC);
    AppointmentRecord {
        appointment_id: medrelay_protocol::schedule::AppointmentId::parse("apt_1").unwrap(),
        provider_id: ProviderId::parse("prv_1").unwrap(),
        patient_id: PatientId::parse("pat_1").unwrap(),
        slot: SlotTime {
            date: utc.date(),
            time_slot: ClockTime::parse(&utc.strftime("%H:%M").to_string()).unwrap(),
            start,
            end: start + SignedDuration::from_mins(30),
        },
        status: AppointmentStatus::Scheduled,
        history: vec![HistoryEntry {
            at: booked_at,
            by: None,
            action: HistoryAction::Booked,
            from: None,
        }],
        history_dropped: 0,
        reschedules_dropped: 0,
        from_waitlist: false,
        needs_reschedule: false,
    }
}

#[test]
fn an_appointment_counts_on_its_clinic_day_with_its_lead_and_how_it_ended() {
    let start: Timestamp = "2026-03-08T04:30:00Z".parse().unwrap();
    let booked_at = start - SignedDuration::from_hours(49) - SignedDuration::from_mins(59);
    let mut record = appointment(start, booked_at);
    // 04:30 UTC is still the 7th in New York, the 8th in Berlin.
    let york = TimeZone::get("America/New_York").unwrap();
    let (key, f) = figures(&record, &york);
    assert_eq!(key, "a/2026-03-07/prv_1");
    assert_eq!(
        f,
        [
            (a::BOOKED, 1),
            (a::BOOKED_MINUTES, 30),
            (a::HOUR_MINUTES + 23, 30),
            (a::LEAD_HOURS + 49, 1)
        ]
        .into()
    );
    let (key, f) = figures(&record, &TimeZone::get("Europe/Berlin").unwrap());
    assert_eq!(key, "a/2026-03-08/prv_1");
    assert_eq!(f.get(&(a::HOUR_MINUTES + 5)), Some(&30), "05:30 in Berlin");

    // Cancelled 23 h 59 min before the start: late; 24 h before: not.
    for (before, late) in [
        (SignedDuration::from_mins(23 * 60 + 59), true),
        (SignedDuration::from_hours(24), false),
    ] {
        record.status = AppointmentStatus::Cancelled;
        record.history.truncate(1);
        record.push_history(HistoryEntry {
            at: start - before,
            by: None,
            action: HistoryAction::Status(AppointmentStatus::Cancelled),
            from: None,
        });
        let (_, f) = figures(&record, &york);
        assert_eq!(f.contains_key(&a::LATE_CANCELLED), late, "{before}");
        assert_eq!(f.get(&a::CANCELLED), Some(&1));
        assert_eq!(
            f.get(&a::BOOKED_MINUTES),
            None,
            "cancelled time is not booked time"
        );
    }

    // Moves are counted even after the history dropped them.
    let mut moved = appointment(start, booked_at);
    moved.from_waitlist = true;
    for _ in 0..60 {
        moved.push_history(HistoryEntry {
            at: booked_at,
            by: None,
            action: HistoryAction::Rescheduled,
            from: None,
        });
    }
    let (_, f) = figures(&moved, &york);
    assert_eq!(f.get(&a::RESCHEDULES), Some(&60));
    assert_eq!(f.get(&a::WAITLIST_FILLS), Some(&1));
}

#[test]
fn minutes_fall_in_the_clinic_hours_they_cover_and_visits_in_the_patients_row() {
    use super::Counted;
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    // 09:45-10:30 Berlin (UTC+1 in winter): 15 minutes in hour 9, 30 in 10.
    let hours = a::by_hour(
        at("2026-01-05T08:45:00Z"),
        at("2026-01-05T09:30:00Z"),
        &berlin,
    );
    assert_eq!(hours, [(9, 15), (10, 30)]);
    // The spring-forward night: 01:30-03:30 Berlin is one hour of time.
    let hours = a::by_hour(
        at("2026-03-29T00:30:00Z"),
        at("2026-03-29T01:30:00Z"),
        &berlin,
    );
    assert_eq!(hours, [(1, 30), (3, 30)]);

    let mut record = appointment(at("2026-01-05T08:45:00Z"), at("2026-01-01T08:00:00Z"));
    assert_eq!(record.rows(&berlin).len(), 1, "not seen yet");
    record.status = AppointmentStatus::Completed;
    let rows = record.rows(&berlin);
    assert_eq!(
        rows[1],
        ("p/prv_1/2026-01-05/pat_1".into(), [(a::VISITS, 1)].into())
    );
    assert_eq!(rows[0].1.get(&a::COMPLETED), Some(&1));
}

#[tokio::test]
async fn record_figures_equal_a_recount_through_writes_changes_deletions_and_erasures() {
    use crate::medical::{self, Change, MedicalRecord};
    use medrelay_protocol::{RecordId, UserId};
    let config = StoreConfig {
        stats_zone: TimeZone::get("Europe/Berlin").unwrap(),
        ..StoreConfig::default()
    };
    let (_dir, store, _system) = store_and_system_with(config);
    let vault = crate::phi::Vault::ephemeral();
    let zone = store.stats_zone().clone();
    let authors: Vec<UserId> = (0..3)
        .map(|i| UserId::parse(&format!("usr_author{i}")).unwrap())
        .collect();
    let patients: Vec<PatientId> = (0..3)
        .map(|i| PatientId::parse(&format!("pat_rec{i}")).unwrap())
        .collect();
    let start: Timestamp = "2026-03-27T20:00:00Z".parse().unwrap();
    let mut rng = Rng(0xA11CE);
    let (mut live, mut erased): (Vec<MedicalRecord>, usize) = (Vec::new(), 0);
    for step in 0..2_000_i64 {
        // Every 37 minutes, across Berlin's spring-forward night.
        let now = start + SignedDuration::from_mins(37 * step);
        let by = authors[rng.below(authors.len())].clone();
        let mut batch = WriteBatch::new();
        let op = if live.is_empty() { 0 } else { rng.below(10) };
        match op {
            0..=3 => {
                let record = MedicalRecord {
                    record_id: RecordId::parse(&format!("rec_{step:05}")).unwrap(),
                    patient_id: patients[rng.below(patients.len())].clone(),
                    author: by.clone(),
                    date: now.to_zoned(TimeZone::UTC).date(),
                    diagnosis: "Hypertension".into(),
                    treatment: String::new(),
                    prescriptions: Vec::new(),
                    created_at: now,
                    updated_at: None,
                    deleted_at: None,
                    version: 1,
                };
                medical::write(
                    &mut batch,
                    (&vault, &zone),
                    &record,
                    &by,
                    Change::Created,
                    Vec::new(),
                );
                live.push(record);
            }
            4..=7 => {
                let i = rng.below(live.len());
                let record = &mut live[i];
                record.version += 1;
                record.updated_at = Some(now);
                let change = if op == 7 {
                    record.deleted_at = Some(now);
                    Change::Deleted
                } else {
                    Change::Updated
                };
                medical::write(&mut batch, (&vault, &zone), record, &by, change, Vec::new());
            }
            _ => {
                let record = live.swap_remove(rng.below(live.len()));
                medical::erase(&mut batch, &store, &record.patient_id, &record.record_id).unwrap();
                erased += 1;
            }
        }
        store.write(batch).await.unwrap();
        if step == 0 {
            // 20:00 UTC is 21:00 in Berlin: the clinic's 27th.
            let first = format!("r/2026-03-27/{by}");
            assert_eq!(kept(&store).keys().collect::<Vec<_>>(), [&first]);
        }
        if step % 250 == 249 {
            assert_eq!(
                kept(&store),
                rebuild::recount(&store).unwrap(),
                "step {step}"
            );
        }
    }
    assert!(
        erased > 100 && live.len() > 100,
        "{erased} erased, {} live",
        live.len()
    );
    let rows = kept(&store);
    assert_eq!(rows, rebuild::recount(&store).unwrap());
    assert!(rows.keys().all(|k| k.starts_with("r/")));
}
