//! Failed-login counting: after `max` failures for one username within a
//! window, that username is locked for a while. Kept in memory (a restart
//! forgets it).
//!
//! # Bounds
//! Keys are validated usernames ([`Username`]: at most 32 ASCII bytes, held
//! inline), and the table holds at most `capacity` of them in one slab that,
//! once full, is reused in place: its memory stops growing and no flood makes
//! it churn. When it is full, a new name evicts another: an expired lock
//! first, else the name whose last failure is the oldest, and a name locked
//! right now only when nothing but locks is left. So a flood of made-up names
//! costs a fixed amount of memory and does not switch lock-out off: a name
//! being guessed fails again and again and stays among the newest, and its
//! lock outlives the flood.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use medrelay_protocol::Username;

/// The longest username (`Username` enforces it).
const MAX_KEY: usize = 32;

/// A username, inline: no allocation per entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    len: u8,
    bytes: [u8; MAX_KEY],
}

impl Key {
    fn new(username: &Username) -> Self {
        // `Username` is 3 to 32 ASCII characters; the zip only keeps this
        // total should that rule ever change.
        let mut bytes = [0; MAX_KEY];
        let mut len = 0;
        for (slot, b) in bytes.iter_mut().zip(username.as_str().bytes()) {
            *slot = b;
            len += 1;
        }
        Key { len, bytes }
    }
}

/// No slot.
const NIL: u32 = u32::MAX;

/// One tracked username, a link in the list it belongs to: `locked` while
/// `locked_until` is set, else `counting` (or the free list, by `next`).
#[derive(Clone, Copy)]
struct Slot {
    key: Key,
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
    prev: u32,
    next: u32,
}

/// A doubly linked list of slots, oldest first.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

struct Table {
    index: HashMap<Key, u32>,
    slots: Vec<Slot>,
    /// Names counting failures, by last failure.
    counting: List,
    /// Locked names, by when the lock was taken (every lock lasts as long,
    /// so also by when it ends).
    locked: List,
    /// Slots freed by a successful login.
    free: u32,
}

impl Table {
    fn new() -> Self {
        Table {
            index: HashMap::new(),
            slots: Vec::new(),
            counting: List::EMPTY,
            locked: List::EMPTY,
            free: NIL,
        }
    }

    fn slot(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i as usize)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot> {
        self.slots.get_mut(i as usize)
    }

    fn list_of(&mut self, i: u32) -> &mut List {
        if self.slot(i).is_some_and(|s| s.locked_until.is_some()) {
            &mut self.locked
        } else {
            &mut self.counting
        }
    }

    /// Takes slot `i` out of its list.
    fn unlink(&mut self, i: u32) {
        let Some(&Slot { prev, next, .. }) = self.slot(i) else {
            return;
        };
        match self.slot_mut(prev) {
            Some(p) => p.next = next,
            None => self.list_of(i).head = next,
        }
        match self.slot_mut(next) {
            Some(n) => n.prev = prev,
            None => self.list_of(i).tail = prev,
        }
    }

    /// Appends slot `i`, as the newest, to the list its lock state names.
    fn push(&mut self, i: u32) {
        let tail = self.list_of(i).tail;
        if let Some(s) = self.slot_mut(i) {
            s.prev = tail;
            s.next = NIL;
        }
        match self.slot_mut(tail) {
            Some(t) => t.next = i,
            None => self.list_of(i).head = i,
        }
        self.list_of(i).tail = i;
    }

    /// Frees a slot for a new name: an expired lock, else the oldest
    /// counting name, else the oldest lock.
    fn evict(&mut self, now: Instant) -> Option<u32> {
        let oldest_lock = self.locked.head;
        let expired = self
            .slot(oldest_lock)
            .and_then(|s| s.locked_until)
            .is_some_and(|until| until <= now);
        let victim = if expired || self.counting.head == NIL {
            oldest_lock
        } else {
            self.counting.head
        };
        let key = self.slot(victim)?.key;
        self.unlink(victim);
        self.index.remove(&key);
        Some(victim)
    }
}

/// Per-username failure counter.
pub struct LoginLockout {
    table: Mutex<Table>,
    max: u32,
    window: Duration,
    lockout: Duration,
    capacity: usize,
}

impl LoginLockout {
    /// Locks a username for `lockout` after `max` failures within `window`,
    /// tracking at most `capacity` usernames.
    pub fn new(max: u32, window: Duration, lockout: Duration, capacity: usize) -> Self {
        Self {
            table: Mutex::new(Table::new()),
            max: max.max(1),
            window,
            lockout,
            // Slot numbers are u32, with one value kept for "none".
            capacity: capacity.clamp(1, NIL as usize),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` while `username` is locked.
    ///
    /// # Errors
    /// How long until the lock ends.
    pub fn check(&self, username: &Username) -> Result<(), Duration> {
        let now = Instant::now();
        let table = self.table();
        let until = table
            .index
            .get(&Key::new(username))
            .and_then(|&i| table.slot(i))
            .and_then(|s| s.locked_until);
        match until {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the lock's length if this one triggered it.
    pub fn failed(&self, username: &Username) -> Option<Duration> {
        let now = Instant::now();
        let key = Key::new(username);
        let mut table = self.table();
        let fresh = Slot {
            key,
            failures: 0,
            window_start: now,
            locked_until: None,
            prev: NIL,
            next: NIL,
        };
        let i = match table.index.get(&key).copied() {
            Some(i) => {
                table.unlink(i);
                i
            }
            None => {
                let i = if table.free != NIL {
                    let i = table.free;
                    table.free = table.slot(i).map_or(NIL, |s| s.next);
                    i
                } else if table.slots.len() < self.capacity {
                    let len = table.slots.len();
                    if len == table.slots.capacity() {
                        // Doubling, as a Vec does, but never past the size.
                        table
                            .slots
                            .reserve_exact(len.max(16).min(self.capacity - len));
                    }
                    table.slots.push(fresh);
                    (table.slots.len() - 1) as u32
                } else {
                    table.evict(now)?
                };
                if let Some(slot) = table.slot_mut(i) {
                    *slot = fresh;
                }
                table.index.insert(key, i);
                i
            }
        };
        let locked = table.slot_mut(i).and_then(|slot| self.count(slot, now));
        table.push(i);
        locked
    }

    /// Counts one failure in `slot`; the lock's length if it locks.
    fn count(&self, slot: &mut Slot, now: Instant) -> Option<Duration> {
        if slot.locked_until.is_some_and(|until| until <= now) {
            slot.locked_until = None;
            slot.failures = 0;
            slot.window_start = now;
        }
        if now.duration_since(slot.window_start) >= self.window {
            slot.failures = 0;
            slot.window_start = now;
        }
        slot.failures += 1;
        if slot.failures < self.max {
            return None;
        }
        slot.failures = 0;
        slot.window_start = now;
        slot.locked_until = Some(now + self.lockout);
        Some(self.lockout)
    }

    /// Forgets a username's failures after a successful login.
    pub fn succeeded(&self, username: &Username) {
        let mut table = self.table();
        if let Some(i) = table.index.remove(&Key::new(username)) {
            table.unlink(i);
            let free = table.free;
            if let Some(slot) = table.slot_mut(i) {
                slot.locked_until = None;
                slot.next = free;
            }
            table.free = i;
        }
    }

    /// How many usernames are tracked (for metrics and tests).
    pub fn len(&self) -> usize {
        self.table().index.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    #[test]
    fn locks_after_max_failures_and_success_resets() {
        let l = LoginLockout::new(3, Duration::from_secs(60), Duration::from_secs(30), 100);
        let (a, b) = (name("alice"), name("bob"));
        assert!(l.check(&a).is_ok());
        assert_eq!(l.failed(&a), None);
        assert_eq!(l.failed(&a), None);
        assert_eq!(l.failed(&a), Some(Duration::from_secs(30)));
        let wait = l.check(&a).unwrap_err();
        assert!(wait <= Duration::from_secs(30) && wait > Duration::from_secs(25));
        assert!(l.check(&b).is_ok());
        l.failed(&b);
        l.succeeded(&b);
        l.failed(&b);
        l.failed(&b);
        assert!(l.check(&b).is_ok());
        // Keys are the normalised names.
        assert!(l.check(&name("ALICE")).is_err());
    }

    #[test]
    fn a_full_table_forgets_the_oldest_name_and_keeps_locking() {
        let l = LoginLockout::new(3, Duration::from_secs(60), Duration::from_secs(30), 16);
        for i in 0..1_000 {
            assert_eq!(l.failed(&name(&format!("flood{i}"))), None);
        }
        assert_eq!(l.len(), 16);
        // A real name, guessed between waves of made-up ones that each
        // nearly fill the table, is still locked on its third failure.
        let frank = name("frank");
        let mut wave = 0;
        let mut locked = None;
        for _ in 0..3 {
            locked = l.failed(&frank);
            for _ in 0..15 {
                l.failed(&name(&format!("wave{wave}")));
                wave += 1;
            }
        }
        assert_eq!(locked, Some(Duration::from_secs(30)));
        assert!(l.check(&frank).is_err());
        // A lock outlives any flood of names that are not locked.
        for i in 0..10_000 {
            l.failed(&name(&format!("more{i}")));
        }
        assert_eq!(l.len(), 16);
        assert!(l.check(&frank).is_err());
    }

    #[test]
    fn locks_go_last_and_the_oldest_lock_first() {
        let l = LoginLockout::new(1, Duration::from_secs(60), Duration::from_secs(30), 2);
        let (a, b, c) = (name("alice"), name("bob"), name("carol"));
        assert!(l.failed(&a).is_some());
        assert!(l.failed(&b).is_some());
        assert!(l.failed(&c).is_some());
        assert!(l.check(&a).is_ok(), "the oldest lock made room");
        assert!(l.check(&b).is_err() && l.check(&c).is_err());
    }

    #[test]
    fn an_expired_lock_is_forgotten_before_a_counting_name() {
        let l = LoginLockout::new(2, Duration::from_secs(60), Duration::ZERO, 2);
        let (a, b, c) = (name("alice"), name("bob"), name("carol"));
        l.failed(&b);
        l.failed(&a);
        assert!(l.failed(&a).is_some(), "locked, and at once expired");
        l.failed(&c);
        // Bob, counting since before Alice's lock, is kept.
        assert_eq!(l.failed(&b), Some(Duration::ZERO));
    }
}
