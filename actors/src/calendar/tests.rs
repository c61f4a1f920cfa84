use jiff::SignedDuration;
use medrelay_protocol::schedule::{ClockTime, HistoryAction, SlotTime};

use super::*;
use crate::schedule::changes::reserve_cells;
use crate::schedule::{HistoryEntry, IndexEntry};
use crate::store::WriteBatch;

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// Writes an appointment as the schedule does: record, both indexes, and
/// (while it holds its time) both owners' cells. Its id says it was made
/// at `made`; it last changed at `changed`.
async fn put(
    store: &Store,
    made: Timestamp,
    owner: (&str, &str),
    start: Timestamp,
    status: AppointmentStatus,
    changed: Timestamp,
) -> String {
    let id = crate::ids::lowest_id_at("apt", made);
    let local = start.to_zoned(jiff::tz::TimeZone::UTC);
    let entry = |at| HistoryEntry {
        at,
        by: None,
        action: HistoryAction::Booked,
        from: None,
    };
    let record = AppointmentRecord {
        appointment_id: AppointmentId::parse(&id).unwrap(),
        provider_id: ProviderId::parse(owner.0).unwrap(),
        patient_id: PatientId::parse(owner.1).unwrap(),
        slot: SlotTime {
            date: local.date(),
            time_slot: ClockTime::parse(&local.strftime("%H:%M").to_string()).unwrap(),
            start,
            end: start + SignedDuration::from_mins(30),
        },
        status,
        history: vec![entry(made), entry(changed)],
        history_dropped: 0,
        reschedules_dropped: 0,
        from_waitlist: false,
        needs_reschedule: false,
    };
    let mut batch = WriteBatch::new();
    batch.put(id.clone(), &record);
    batch.put(
        format!("{}/{id}", owner.0),
        &ProviderAppointment(IndexEntry {}),
    );
    batch.put(
        format!("{}/{id}", owner.1),
        &PatientAppointment(IndexEntry {}),
    );
    if status.holds_slot() {
        reserve_cells(&mut batch, &record, None);
    }
    store.write(batch).await.unwrap();
    id
}

#[tokio::test]
async fn a_feed_reads_its_window_and_what_still_holds_time_in_it() {
    let (_dir, store, _system) = crate::test_support::store_and_system();
    let now: Timestamp = "2027-01-10T12:00:00Z".parse().unwrap();
    let window = FeedWindow {
        from: now - days(30),
        to: now + days(60),
        cancelled_since: now - days(30),
        made_since: now - days(90),
    };
    let me = ("doc", "pat_a");
    let recent = now - days(2);
    let old = now - days(200);
    let at = |d: i64| now + days(d);
    let booked = put(
        &store,
        recent,
        me,
        at(5),
        AppointmentStatus::Scheduled,
        recent,
    )
    .await;
    // Made long before the window's horizon, moved into it since: found by
    // its cells.
    let moved = put(&store, old, me, at(6), AppointmentStatus::Scheduled, recent).await;
    let done = put(
        &store,
        recent + SignedDuration::from_secs(1),
        me,
        at(-3),
        AppointmentStatus::Completed,
        recent,
    )
    .await;
    let cancelled = put(
        &store,
        recent + SignedDuration::from_secs(2),
        me,
        at(7),
        AppointmentStatus::Cancelled,
        recent,
    )
    .await;
    // Cancelled longer ago than feeds keep cancellations.
    put(
        &store,
        now - days(80),
        me,
        at(8),
        AppointmentStatus::Cancelled,
        now - days(40),
    )
    .await;
    // Outside the window, before and after.
    put(
        &store,
        recent + SignedDuration::from_secs(3),
        me,
        at(-40),
        AppointmentStatus::Completed,
        recent,
    )
    .await;
    put(
        &store,
        recent + SignedDuration::from_secs(4),
        me,
        at(61),
        AppointmentStatus::Scheduled,
        recent,
    )
    .await;
    // Another doctor's and another patient's.
    let theirs = put(
        &store,
        recent + SignedDuration::from_secs(5),
        ("doc2", "pat_b"),
        at(5),
        AppointmentStatus::Scheduled,
        recent,
    )
    .await;

    let ids = |owner: FeedOwner| {
        feed_appointments(&store, &owner, window)
            .unwrap()
            .into_iter()
            .map(|e| e.appointment_id.to_string())
            .collect::<Vec<_>>()
    };
    let doctor = ids(FeedOwner::Provider(ProviderId::parse("doc").unwrap()));
    assert_eq!(
        doctor,
        vec![
            done.clone(),
            booked.clone(),
            moved.clone(),
            cancelled.clone()
        ]
    );
    let patient = ids(FeedOwner::Patient(PatientId::parse("pat_a").unwrap()));
    assert_eq!(patient, doctor, "the patient's feed reads the same way");
    let other = ids(FeedOwner::Provider(ProviderId::parse("doc2").unwrap()));
    assert_eq!(other, vec![theirs]);

    let entries = feed_appointments(
        &store,
        &FeedOwner::Patient(PatientId::parse("pat_a").unwrap()),
        window,
    )
    .unwrap();
    let first = &entries[0];
    assert_eq!(
        (first.changes, first.changed_at, first.booked_at),
        (2, recent, recent + SignedDuration::from_secs(1))
    );
}
