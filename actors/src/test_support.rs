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
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("t.redb"),
        StoreConfig::default(),
        EventHub::new(16),
    )
    .unwrap();
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
