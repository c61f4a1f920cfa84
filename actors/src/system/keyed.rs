//! The template every keyed actor follows (accounts, schedules, and the
//! domains to come): started lazily by its [`Registry`](super::Registry),
//! retired when idle, one owner per key, restarted from the store after a
//! panic, and changing its state only after a durable commit.
//!
//! An actor embeds a [`Lifecycle`], implements [`Owner`], and then:
//! - calls [`start`] from `Actor::started`;
//! - begins every handler with [`successor`] and, when it returns an
//!   address, hands the message on with [`forward`];
//! - runs each handler body through [`guarded`](super::guarded);
//! - writes with [`commit`] (or [`after`] for a write with a fallback), which
//!   holds the mailbox until the batch is durable and only then lets the
//!   actor apply the change and answer.
//!
//! # One owner per key
//! An actor that retired for idleness can be revived by its supervisor when
//! a late message still held its address, while the registry has already
//! started a successor for the same key. Such a revived actor serves
//! nothing itself: every message it receives is forwarded to the registry's
//! actor for the key (or, when that one is gone, it takes the key back and
//! serves). Two actors never decide for one key.

use std::future::Future;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::fut;
use actix::prelude::*;

use super::{IdleTimer, KeyedActor, Retire};
use crate::store::{Committed, Store, WriteBatch, WriteError};

/// What every keyed actor holds besides its own state.
pub struct Lifecycle<A: KeyedActor> {
    key: String,
    store: Store,
    retire: Retire<A>,
    idle: IdleTimer,
    /// Set while this actor was revived and a successor holds its key.
    superseded: bool,
}

impl<A: KeyedActor> Lifecycle<A> {
    /// The lifecycle of the actor for `key`, retiring after `idle_after`
    /// without messages.
    pub fn new(key: String, store: Store, retire: Retire<A>, idle_after: Duration) -> Self {
        Self {
            key,
            store,
            retire,
            idle: IdleTimer::new(idle_after),
            superseded: false,
        }
    }

    /// The key this actor owns.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The store it writes through.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Counts as activity now: an actor with timed work pending (a slot
    /// hold to release) calls it so as not to retire before that work.
    pub fn touch(&mut self) {
        self.idle.touch();
    }

    /// Takes the actor out of its registry (right before `ctx.stop()`).
    pub fn retire_now(&self, me: &Addr<A>) {
        self.retire.now(me);
    }
}

/// A keyed actor that owns state loaded from the store.
pub trait Owner: KeyedActor {
    /// The actor's lifecycle.
    fn lifecycle(&mut self) -> &mut Lifecycle<Self>;

    /// Drops the in-memory state, so the next use loads it from the store.
    fn forget(&mut self);

    /// Loads the state now (at start, and after a restart: the store is the
    /// truth, the memory may be half-changed by the panic).
    ///
    /// # Errors
    /// Why it could not be loaded; the actor keeps running and tries again
    /// on its next message.
    fn load_now(&mut self) -> Result<(), String>;

    /// Called at every idle check of a busy actor; `false` retires it now
    /// (what it owns is gone). The default keeps it.
    fn keep(&mut self) -> bool {
        true
    }

    /// Called at every idle check, before it, with the context: for timed
    /// work of the actor's own (the default has none).
    fn tick(&mut self, _ctx: &mut Context<Self>) {}
}

/// How often an actor checks whether to retire, at most.
const MAX_CHECK_EVERY: Duration = Duration::from_secs(5);

/// The body of `Actor::started`: takes the key (or notes the successor that
/// holds it), loads the state, and checks for idleness every so often.
pub fn start<A: Owner>(act: &mut A, ctx: &mut Context<A>) {
    let me = ctx.address();
    let life = act.lifecycle();
    life.superseded = life.retire.successor(&me).is_some();
    life.idle.touch();
    let every = life.idle.check_every().min(MAX_CHECK_EVERY);
    let superseded = life.superseded;
    act.forget();
    if superseded {
        tracing::info!(actor = A::KIND, key = %act.lifecycle().key, "revived actor has a successor; forwarding to it");
    } else if let Err(e) = act.load_now() {
        tracing::debug!(actor = A::KIND, key = %act.lifecycle().key, error = %e, "state not loaded at start");
    }
    ctx.run_interval(every, |act, ctx| {
        act.tick(ctx);
        let expired = act.lifecycle().idle.expired();
        if expired || !act.keep() {
            act.lifecycle().retire.now(&ctx.address());
            ctx.stop();
        }
    });
}

/// The start of every handler: marks activity, and returns the actor to
/// forward the message to while this one is superseded. When the successor
/// has gone, this actor takes the key back (with its state reloaded on use)
/// and serves.
pub fn successor<A: Owner>(act: &mut A, ctx: &Context<A>) -> Option<Addr<A>> {
    let life = act.lifecycle();
    life.idle.touch();
    if !life.superseded {
        return None;
    }
    let next = life.retire.successor(&ctx.address());
    if next.is_none() {
        life.superseded = false;
        tracing::info!(actor = A::KIND, key = %life.key, "a revived actor took its key back");
        act.forget();
    }
    next
}

/// Sends `msg` on to the key's current actor and hands back its answer
/// (`lost` when that actor is gone too).
pub fn forward<A, M, T, E>(next: Addr<A>, msg: M, lost: E) -> ResponseFuture<Result<T, E>>
where
    A: Owner + Handler<M>,
    M: Message<Result = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    A::Context: ToEnvelope<A, M>,
{
    // `schedule_forwarded_total`, `account_forwarded_total`, ...
    metrics::counter!(format!("{}_forwarded_total", A::KIND)).increment(1);
    Box::pin(async move { next.send(msg).await.unwrap_or(Err(lost)) })
}

/// Runs `work` (usually a store write) while the mailbox waits, then `then`
/// on the actor with its outcome: the next message sees this one's effect.
pub fn after<A, W, X, T, E>(
    act: &A,
    work: W,
    then: impl FnOnce(X, &mut A) -> Result<T, E> + 'static,
) -> AtomicResponse<A, Result<T, E>>
where
    A: Owner,
    W: Future<Output = Result<X, E>> + 'static,
    X: 'static,
    T: 'static,
    E: 'static,
{
    AtomicResponse::new(Box::pin(work.into_actor(act).map(
        move |outcome, act, _| match outcome {
            Ok(x) => then(x, act),
            Err(e) => Err(e),
        },
    )))
}

/// Writes `batch` and, once it is durable, lets `then` change the actor's
/// state and give the reply. A rejected write is `rejected(error)` and
/// changes nothing. An empty batch answers at once.
pub fn commit<A, T, E>(
    act: &mut A,
    batch: WriteBatch,
    rejected: impl FnOnce(WriteError) -> E + 'static,
    then: impl FnOnce(&mut A, &Committed) -> T + 'static,
) -> AtomicResponse<A, Result<T, E>>
where
    A: Owner,
    T: 'static,
    E: 'static,
{
    if batch.is_empty() {
        return AtomicResponse::new(Box::pin(
            fut::ready(()).map(move |(), act, _| Ok(then(act, &Committed::default()))),
        ));
    }
    let store = act.lifecycle().store.clone();
    let write = async move { store.write(batch).await.map_err(rejected) };
    after(act, write, move |committed, act| Ok(then(act, &committed)))
}

/// A failed preparation: answered at once, nothing written.
pub fn refused<A: Owner, T: 'static, E: 'static>(e: E) -> AtomicResponse<A, Result<T, E>> {
    AtomicResponse::new(Box::pin(fut::ready(Err(e))))
}

/// The `Actor`, `Supervised` and `KeyedActor` impls every keyed actor has:
/// `keyed_actor!(ScheduleActor, "schedule")`.
macro_rules! keyed_actor {
    ($actor:ty, $kind:literal) => {
        impl actix::Actor for $actor {
            type Context = actix::Context<Self>;

            fn started(&mut self, ctx: &mut actix::Context<Self>) {
                $crate::system::keyed::start(self, ctx);
            }
        }

        impl actix::Supervised for $actor {
            fn restarting(&mut self, _: &mut actix::Context<Self>) {
                $crate::system::count_restart(<Self as $crate::system::KeyedActor>::KIND);
            }
        }

        impl $crate::system::KeyedActor for $actor {
            const KIND: &'static str = $kind;
        }
    };
}
pub(crate) use keyed_actor;

/// A handler for each message that changes a keyed actor's state: forward
/// while superseded, prepare inside the panic guard (`Internal` on a
/// panic), then the actor's own `commit`. The error type must have an
/// `Internal` variant:
/// `writing_handlers!(ScheduleActor, ScheduleError, Book => AppointmentRecord: book, ...)`.
macro_rules! writing_handlers {
    ($actor:ty, $error:ident, $($msg:ty => $reply:ty : $method:ident),+ $(,)?) => {$(
        impl actix::Handler<$msg> for $actor {
            type Result = actix::AtomicResponse<Self, Result<$reply, $error>>;

            fn handle(&mut self, msg: $msg, ctx: &mut actix::Context<Self>) -> Self::Result {
                if let Some(next) = $crate::system::keyed::successor(self, ctx) {
                    let forwarded = $crate::system::keyed::forward(next, msg, $error::Internal);
                    return actix::AtomicResponse::new(Box::pin(
                        actix::WrapFuture::into_actor(forwarded, self),
                    ));
                }
                let prepared = $crate::system::guarded(
                    self,
                    ctx,
                    || Err($error::Internal),
                    |act, _| act.$method(msg),
                );
                self.commit(prepared)
            }
        }
    )+};
}
pub(crate) use writing_handlers;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::hub::EventHub;
    use crate::store::StoreConfig;
    use crate::system::{ActorSystem, Registry};

    static NEXT: AtomicU64 = AtomicU64::new(1);

    /// Owns a number it is given at construction; answers with it.
    struct Probe {
        life: Lifecycle<Probe>,
        id: u64,
        loads: u32,
    }

    keyed_actor!(Probe, "probe");

    impl Owner for Probe {
        fn lifecycle(&mut self) -> &mut Lifecycle<Self> {
            &mut self.life
        }
        fn forget(&mut self) {}
        fn load_now(&mut self) -> Result<(), String> {
            self.loads += 1;
            Ok(())
        }
    }

    /// Retires, then holds the arbiter until told to go on, so the registry
    /// can start a successor before this actor is revived.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct RetireAndWait {
        retired: std::sync::mpsc::Sender<()>,
        resume: std::sync::mpsc::Receiver<()>,
    }

    #[derive(Message, Clone)]
    #[rtype(result = "Result<u64, ()>")]
    struct Whoami;

    impl Handler<RetireAndWait> for Probe {
        type Result = ();
        fn handle(&mut self, msg: RetireAndWait, ctx: &mut Context<Self>) {
            self.life.retire_now(&ctx.address());
            let _ = msg.retired.send(());
            let _ = msg.resume.recv_timeout(Duration::from_secs(10));
            ctx.stop();
        }
    }

    impl Handler<Whoami> for Probe {
        type Result = ResponseFuture<Result<u64, ()>>;
        fn handle(&mut self, msg: Whoami, ctx: &mut Context<Self>) -> Self::Result {
            if let Some(next) = successor(self, ctx) {
                return forward(next, msg, ());
            }
            Box::pin(std::future::ready(Ok(self.id)))
        }
    }

    #[test]
    fn a_revived_actor_forwards_to_the_successor_that_holds_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("t.redb"),
            StoreConfig::default(),
            EventHub::new(8),
        )
        .unwrap();
        let system = Arc::new(ActorSystem::start(2).unwrap());
        let registry = Registry::new(system.clone(), move |key, retire| Probe {
            life: Lifecycle::new(key, store.clone(), retire, Duration::from_secs(60)),
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            loads: 0,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let first = registry.get("k");
            let first_id = first.send(Whoami).await.unwrap().unwrap();
            // The first actor retires, and before it is revived the registry
            // starts a successor for the key.
            let (retired_tx, retired) = std::sync::mpsc::channel();
            let (resume, resume_rx) = std::sync::mpsc::channel();
            first.do_send(RetireAndWait {
                retired: retired_tx,
                resume: resume_rx,
            });
            retired.recv_timeout(Duration::from_secs(10)).unwrap();
            let second = registry.get("k");
            assert!(second != first);
            resume.send(()).unwrap();
            let second_id = second.send(Whoami).await.unwrap().unwrap();
            assert_ne!(first_id, second_id);
            // A late message on the old address revives the first actor,
            // which must not answer from its own state: it forwards.
            assert_eq!(first.send(Whoami).await.unwrap(), Ok(second_id));
            assert_eq!(first.send(Whoami).await.unwrap(), Ok(second_id));
            assert!(
                registry.get("k") == second,
                "the key stays with the successor"
            );
        });
        system.stop();
    }
}
