//! Set-up shared by the actor tests: a store in a temporary folder with an
//! actor system beside it, and patients registered straight in the store.

use std::sync::Arc;

use medrelay_protocol::{Email, Username};

use crate::accounts::{NewAccount, NewProfile, Registered, register};
use crate::hub::EventHub;
use crate::store::{Store, StoreConfig};
use crate::system::ActorSystem;

/// A fresh store (`t.redb` in the returned folder, which must outlive it)
/// and an actor system of two threads.
pub(crate) fn store_and_system() -> (tempfile::TempDir, Store, Arc<ActorSystem>) {
    store_and_system_with(StoreConfig::default())
}

/// [`store_and_system`] with the store's tunables given.
pub(crate) fn store_and_system_with(
    config: StoreConfig,
) -> (tempfile::TempDir, Store, Arc<ActorSystem>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.redb"), config, EventHub::new(16)).unwrap();
    let system = Arc::new(ActorSystem::start(2).unwrap());
    (dir, store, system)
}

/// Registers a patient `name` (`p@example.org`, a dummy password hash).
pub(crate) async fn register_patient(store: &Store, name: &str) -> Registered {
    register(
        store,
        &crate::phi::Vault::ephemeral(),
        NewAccount {
            username: Username::parse(name).unwrap(),
            email: Email::parse("p@example.org").unwrap(),
            password_hash: "not-a-real-hash".into(),
            profile: NewProfile::Patient {
                name: name.into(),
                dob: None,
                contact_info: Default::default(),
                medical_history: Default::default(),
            },
        },
    )
    .await
    .unwrap()
}

/// Doctors' schedule actors on `store`: bookings from now to 400 days ahead,
/// a reminder 24 h before, confirmations on.
pub(crate) fn schedule_registry(
    store: &Store,
    system: &Arc<ActorSystem>,
) -> crate::system::Registry<crate::schedule::ScheduleActor> {
    use jiff::SignedDuration;
    let rules = crate::schedule::BookingRules {
        min_notice: SignedDuration::ZERO,
        horizon: SignedDuration::from_hours(24 * 400),
        hold_for: SignedDuration::from_mins(5),
        holds_per_patient: 2,
        offer_for: SignedDuration::from_mins(15),
    };
    let plan = crate::notify::ReminderPlan::new(vec![SignedDuration::from_hours(24)], true);
    let store = store.clone();
    crate::system::Registry::new(system.clone(), move |id, retire| {
        crate::schedule::ScheduleActor::new(
            id,
            store.clone(),
            rules,
            plan.clone(),
            std::time::Duration::from_secs(60),
            retire,
        )
    })
}

/// A small deterministic generator (xorshift64*), so a failing seed replays.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A number below `n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

/// The same working `ranges` ("09:00-12:00") every day of the week.
pub(crate) fn every_day(ranges: &[&str]) -> Vec<medrelay_protocol::schedule::DayAvailability> {
    use medrelay_protocol::schedule::{DayAvailability, TimeRange, Weekday::*};
    [
        Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
    ]
    .into_iter()
    .map(|day| DayAvailability {
        day,
        slots: ranges
            .iter()
            .map(|r| TimeRange::parse(r).unwrap())
            .collect(),
    })
    .collect()
}

/// Creates doctor `id` in `zone`, working `ranges` every day in 30-minute slots.
pub(crate) async fn create_doctor(
    store: &Store,
    id: &str,
    zone: &str,
    ranges: &[&str],
) -> medrelay_protocol::ProviderId {
    let provider_id = medrelay_protocol::ProviderId::parse(id).unwrap();
    let record = crate::accounts::ProviderRecord {
        provider_id: provider_id.clone(),
        user_id: None,
        name: id.into(),
        specialization: String::new(),
        contact_info: Default::default(),
        time_zone: zone.into(),
        slot_minutes: 30,
        availability: every_day(ranges),
        exceptions: Vec::new(),
        created_at: jiff::Timestamp::now(),
    };
    crate::schedule::create_provider(store, record, None)
        .await
        .unwrap();
    provider_id
}
