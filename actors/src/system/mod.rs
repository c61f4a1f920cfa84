//! The actor runtime: an actix `System` on its own threads, a registry that
//! starts actors lazily under supervision, and the panic guard every handler
//! runs inside.
//!
//! # Supervision
//! actix's `Supervisor` restarts an actor only after the actor *stops*; a panic
//! inside a handler instead kills the actor's task, and its mailbox stays
//! closed for good. So every handler body runs inside [`guarded`]: a panic is
//! caught there, the request fails with an internal error, the actor stops
//! itself, and the supervisor restarts it (same mailbox, so queued requests
//! are kept) with its state reloaded from the store in `started`.
//!
//! # Idle actors
//! An actor that sees no message for `idle_after` removes itself from the
//! registry and stops. Only the registry holds its address, so with the entry
//! gone the supervisor does not restart it; the next request starts a fresh one.
//!
//! # Keyed actors
//! [`keyed`] is the template every actor that owns a key's state follows:
//! lazy start, retirement, one owner per key, supervision, and changing state
//! only after a durable commit.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use actix::{Arbiter, ArbiterHandle};

pub mod keyed;

/// The actix side of the process: a system thread and a few arbiter threads.
pub struct ActorSystem {
    system: actix::System,
    arbiters: Vec<ArbiterHandle>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl ActorSystem {
    /// Starts the system with `arbiters` worker threads (at least one).
    ///
    /// # Errors
    /// An I/O error when a thread cannot be spawned.
    pub fn start(arbiters: usize) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        let count = arbiters.max(1);
        let thread = std::thread::Builder::new()
            .name("actix-system".into())
            .spawn(move || {
                let sys = actix::System::new();
                let handles = sys.block_on(async move {
                    (0..count)
                        .map(|_| Arbiter::new().handle())
                        .collect::<Vec<_>>()
                });
                let _ = tx.send((actix::System::current(), handles));
                let _ = sys.run();
            })?;
        let (system, arbiters) = rx.recv().map_err(|_| {
            std::io::Error::other("the actor system thread exited before it started")
        })?;
        Ok(Self {
            system,
            arbiters,
            thread: Mutex::new(Some(thread)),
            hasher: Default::default(),
        })
    }

    /// The arbiter an actor with this key runs on (stable for the key).
    pub fn arbiter_for<K: Hash>(&self, key: &K) -> &ArbiterHandle {
        let index = self.hasher.hash_one(key) as usize % self.arbiters.len();
        &self.arbiters[index]
    }

    /// Every arbiter (worker thread).
    pub fn arbiters(&self) -> &[ArbiterHandle] {
        &self.arbiters
    }

    /// Stops every actor and joins the system thread (blocks; idempotent).
    pub fn stop(&self) {
        self.system.stop();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// Something the registry can start: built from its key, supervised.
pub trait KeyedActor: Actor<Context = Context<Self>> + Supervised {
    /// The actor's name in logs and metrics (`account`, `schedule`, ...).
    const KIND: &'static str;
}

/// Actors of one kind, one per key, started on first use.
pub struct Registry<A: KeyedActor> {
    system: Arc<ActorSystem>,
    actors: Arc<Mutex<HashMap<String, Addr<A>>>>,
    factory: Arc<dyn Fn(String, Retire<A>) -> A + Send + Sync>,
}

impl<A: KeyedActor> Clone for Registry<A> {
    fn clone(&self) -> Self {
        Self {
            system: self.system.clone(),
            actors: self.actors.clone(),
            factory: self.factory.clone(),
        }
    }
}

/// Lets an idle actor take itself out of its registry.
pub struct Retire<A: KeyedActor> {
    key: String,
    actors: Weak<Mutex<HashMap<String, Addr<A>>>>,
}

impl<A: KeyedActor> Retire<A> {
    /// Removes the actor at `me` from its registry, unless a newer actor
    /// holds the key by now. Call right before `ctx.stop()`.
    pub fn now(&self, me: &Addr<A>) {
        if let Some(actors) = self.actors.upgrade() {
            let mut actors = actors.lock().unwrap_or_else(|e| e.into_inner());
            if actors.get(&self.key) == Some(me) {
                actors.remove(&self.key);
            }
        }
    }
}

impl<A: KeyedActor> Retire<A> {
    /// Puts the actor at `me` back in its registry after a restart, unless a
    /// newer actor holds the key: an actor that retired can be revived by
    /// its supervisor when a late message still held its address. Returns
    /// whether `me` is the registry's actor for the key.
    pub fn reinstate(&self, me: &Addr<A>) -> bool {
        self.successor(me).is_none()
    }

    /// The newer actor that holds the key, if one does; otherwise `me` takes
    /// the key (back) and `None` says it is the owner. A revived actor that
    /// gets `Some` must not serve from its own state: it forwards to the
    /// successor, so one key never has two actors deciding.
    pub fn successor(&self, me: &Addr<A>) -> Option<Addr<A>> {
        // Without the registry (shutting down) there is nobody to defer to.
        let actors = self.actors.upgrade()?;
        let mut actors = actors.lock().unwrap_or_else(|e| e.into_inner());
        match actors.get(&self.key) {
            Some(addr) if addr == me => None,
            Some(addr) if addr.connected() => Some(addr.clone()),
            _ => {
                actors.insert(self.key.clone(), me.clone());
                None
            }
        }
    }
}

impl<A: KeyedActor> Registry<A> {
    /// A registry that builds each actor with `factory(key, retire)`.
    pub fn new(
        system: Arc<ActorSystem>,
        factory: impl Fn(String, Retire<A>) -> A + Send + Sync + 'static,
    ) -> Self {
        Self {
            system,
            actors: Arc::default(),
            factory: Arc::new(factory),
        }
    }

    /// The running actor for `key`, started if needed.
    pub fn get(&self, key: &str) -> Addr<A> {
        let mut actors = self.actors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(addr) = actors.get(key)
            && addr.connected()
        {
            return addr.clone();
        }
        let factory = self.factory.clone();
        let owned = key.to_owned();
        let retire = Retire {
            key: owned.clone(),
            actors: Arc::downgrade(&self.actors),
        };
        let addr = Supervisor::start_in_arbiter(self.system.arbiter_for(&owned), move |_| {
            factory(owned, retire)
        });
        metrics::counter!("actor_starts_total", "actor" => A::KIND).increment(1);
        actors.insert(key.to_owned(), addr.clone());
        addr
    }

    /// Sends `msg` to the actor for `key`. If that actor retired between the
    /// lookup and the send, the message goes to a freshly started one.
    ///
    /// # Errors
    /// [`MailboxError`] when no actor could take the message.
    pub async fn send<M>(&self, key: &str, msg: M) -> Result<M::Result, MailboxError>
    where
        M: Message + Send + Clone + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        match self.get(key).send(msg.clone()).await {
            Err(MailboxError::Closed) => {
                self.actors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|_, addr| addr.connected());
                self.get(key).send(msg).await
            }
            other => other,
        }
    }

    /// How many actors of this kind are running.
    pub fn len(&self) -> usize {
        self.actors.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs one handler body; a panic fails the request with `on_panic` and stops
/// the actor so its supervisor restarts it from the store.
pub fn guarded<A, R>(
    act: &mut A,
    ctx: &mut Context<A>,
    on_panic: impl FnOnce() -> R,
    body: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> R
where
    A: KeyedActor,
{
    match std::panic::catch_unwind(AssertUnwindSafe(|| body(act, ctx))) {
        Ok(result) => result,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(actor = A::KIND, %reason, "actor handler panicked; restarting it from the store");
            ctx.stop();
            on_panic()
        }
    }
}

/// Counts a supervisor restart; call from `Supervised::restarting`.
pub fn count_restart(kind: &'static str) {
    metrics::counter!("actor_restarts_total", "actor" => kind).increment(1);
}

/// Stops the actor after `idle_after` without messages; `touch` marks activity.
pub struct IdleTimer {
    last: std::time::Instant,
    idle_after: Duration,
}

impl IdleTimer {
    /// A timer that expires `idle_after` after the last [`IdleTimer::touch`].
    pub fn new(idle_after: Duration) -> Self {
        Self {
            last: std::time::Instant::now(),
            idle_after,
        }
    }

    /// Records activity.
    pub fn touch(&mut self) {
        self.last = std::time::Instant::now();
    }

    /// Whether the actor has been idle long enough to stop.
    pub fn expired(&self) -> bool {
        self.last.elapsed() >= self.idle_after
    }

    /// How often to check.
    pub fn check_every(&self) -> Duration {
        (self.idle_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retires on `Retire`, answers `Ping`, and takes its key back when
    /// revived, as `PatientSession` does.
    struct Probe {
        retire: Retire<Probe>,
    }

    impl Actor for Probe {
        type Context = Context<Self>;

        fn started(&mut self, ctx: &mut Context<Self>) {
            self.retire.reinstate(&ctx.address());
        }
    }

    impl Supervised for Probe {}

    impl KeyedActor for Probe {
        const KIND: &'static str = "probe";
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct RetireNow;

    #[derive(Message)]
    #[rtype(result = "bool")]
    struct Ping;

    impl Handler<RetireNow> for Probe {
        type Result = ();
        fn handle(&mut self, _: RetireNow, ctx: &mut Context<Self>) {
            self.retire.now(&ctx.address());
            ctx.stop();
        }
    }

    impl Handler<Ping> for Probe {
        type Result = bool;
        fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> bool {
            true
        }
    }

    #[test]
    fn an_actor_revived_after_retiring_takes_its_key_back() {
        let system = Arc::new(ActorSystem::start(1).unwrap());
        let registry = Registry::new(system.clone(), |_, retire| Probe { retire });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // A message queued behind the retirement, from a holder of the
            // address: the supervisor revives the actor to answer it.
            let held = registry.get("k");
            held.do_send(RetireNow);
            assert!(held.send(Ping).await.unwrap());
            assert_eq!(registry.len(), 1);
            assert!(registry.get("k") == held);
        });
        system.stop();
    }
}
