use std::sync::Arc;
use std::time::Duration;

use medrelay_protocol::{Email, Role, Username};

use super::*;
use crate::store::Store;
use crate::system::{ActorSystem, Registry};
use crate::test_support::{register_patient, store_and_system};

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    accounts: Registry<AccountActor>,
    system: Arc<ActorSystem>,
}

fn world(idle_after: Duration) -> World {
    let (dir, store, system) = store_and_system();
    let revocations = Revocations::load(&store).unwrap();
    let s = store.clone();
    let accounts = Registry::new(system.clone(), move |id, retire| {
        AccountActor::new(id, s.clone(), revocations.clone(), idle_after, retire)
    });
    World {
        _dir: dir,
        store,
        accounts,
        system,
    }
}

#[tokio::test]
async fn a_panicking_actor_is_restarted_from_the_store_and_others_keep_serving() {
    let w = world(Duration::from_secs(60));
    let alice = register_patient(&w.store, "alice").await;
    let bob = register_patient(&w.store, "bob").await;
    let (a, b) = (alice.user_id.as_str(), bob.user_id.as_str());

    assert_eq!(
        w.accounts.send(a, Describe).await.unwrap().unwrap().role,
        Role::Patient
    );
    assert!(w.accounts.send(b, Describe).await.unwrap().is_ok());

    // The fault fails its own request with an internal error ...
    assert_eq!(
        w.accounts.send(a, InjectPanic).await.unwrap(),
        Err(AccountError::Internal)
    );
    // ... the same actor answers again, with its state reloaded from the
    // store (the handler had corrupted the role to Admin before panicking) ...
    let reloaded = w.accounts.send(a, Describe).await.unwrap().unwrap();
    assert_eq!(reloaded.role, Role::Patient);
    // ... and writes through it still work, as does every other actor.
    assert!(
        w.accounts
            .send(
                a,
                BeginSession {
                    family: "f1".into(),
                    refresh_jti: "j1".into(),
                    refresh_exp: i64::MAX
                }
            )
            .await
            .unwrap()
            .is_ok()
    );
    assert!(w.accounts.send(b, Describe).await.unwrap().is_ok());
    assert_eq!(w.accounts.len(), 2);
}

#[tokio::test]
async fn a_refresh_token_works_once_and_its_reuse_revokes_the_family() {
    let w = world(Duration::from_secs(60));
    let user = register_patient(&w.store, "carol").await;
    let id = user.user_id.as_str();
    let family = "f1".to_string();
    w.accounts
        .send(
            id,
            BeginSession {
                family: family.clone(),
                refresh_jti: "r1".into(),
                refresh_exp: i64::MAX,
            },
        )
        .await
        .unwrap()
        .unwrap();
    let rotate = |presented: &str, new: &str| RotateRefresh {
        presented_jti: presented.into(),
        new_jti: new.into(),
        new_exp: i64::MAX,
    };
    // Two concurrent uses of r1: exactly one wins.
    let (x, y) = tokio::join!(
        w.accounts.send(id, rotate("r1", "r2")),
        w.accounts.send(id, rotate("r1", "r2b"))
    );
    let results = [x.unwrap(), y.unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.contains(&Err(AccountError::TokenReused)));
    // The reuse revoked the family: even the winner's new token is dead now.
    let winner = if results[0].is_ok() { "r2" } else { "r2b" };
    assert_eq!(
        w.accounts.send(id, rotate(winner, "r3")).await.unwrap(),
        Err(AccountError::Revoked)
    );
    let revocations = Revocations::load(&w.store).unwrap();
    assert!(revocations.is_family_revoked(&family));
    assert_eq!(
        w.accounts.send(id, rotate("nope", "r4")).await.unwrap(),
        Err(AccountError::InvalidToken)
    );
}

#[tokio::test]
async fn idle_actors_retire_and_restart_on_demand() {
    let w = world(Duration::from_millis(40));
    let user = register_patient(&w.store, "dave").await;
    let id = user.user_id.as_str();
    assert!(w.accounts.send(id, Describe).await.unwrap().is_ok());
    assert_eq!(w.accounts.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.accounts.len(), 0, "idle actor did not retire");
    assert!(w.accounts.send(id, Describe).await.unwrap().is_ok());
    assert_eq!(w.accounts.len(), 1);
    let _ = &w.system;
}

#[tokio::test]
async fn usernames_are_unique_under_racing_sign_ups() {
    let w = world(Duration::from_secs(60));
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let store = w.store.clone();
            tokio::spawn(async move {
                register(
                    &store,
                    &crate::phi::Vault::ephemeral(),
                    NewAccount {
                        username: Username::parse("erin").unwrap(),
                        email: Email::parse("e@example.org").unwrap(),
                        password_hash: "h".into(),
                        profile: NewProfile::Admin,
                    },
                )
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for a in attempts {
        match a.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e, RegisterError::UsernameTaken),
        }
    }
    assert_eq!(ok, 1);
}

/// Two actors for one user (as during a hand-over between an actor and its
/// successor) rotate the same refresh token at once: the store's
/// precondition on the used flag lets exactly one through, every round.
#[tokio::test]
async fn two_actors_rotating_one_refresh_token_let_exactly_one_win() {
    let w = world(Duration::from_secs(60));
    let user = register_patient(&w.store, "dave").await;
    let id = user.user_id.as_str();
    let revocations = Revocations::load(&w.store).unwrap();
    let store = w.store.clone();
    let second = Registry::new(w.system.clone(), move |id, retire| {
        AccountActor::new(
            id,
            store.clone(),
            revocations.clone(),
            Duration::from_secs(60),
            retire,
        )
    });
    for round in 0..20 {
        let (family, jti) = (format!("f{round}"), format!("r{round}"));
        let begin = BeginSession {
            family: family.clone(),
            refresh_jti: jti.clone(),
            refresh_exp: i64::MAX,
        };
        w.accounts.send(id, begin).await.unwrap().unwrap();
        let rotate = |new: &str| RotateRefresh {
            presented_jti: jti.clone(),
            new_jti: new.into(),
            new_exp: i64::MAX,
        };
        let (x, y) = tokio::join!(
            w.accounts.send(id, rotate(&format!("{jti}a"))),
            second.send(id, rotate(&format!("{jti}b")))
        );
        let results = [x.unwrap(), y.unwrap()];
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        assert!(results.contains(&Err(AccountError::TokenReused)));
        assert!(
            Revocations::load(&w.store)
                .unwrap()
                .is_family_revoked(&family)
        );
    }
}
