//! Calendar feeds: the private feed URLs doctors and patients subscribe to,
//! and reading the appointments a feed shows.
//!
//! A feed's token is shown once; the store keeps only its SHA-256, so a copy
//! of the database opens no calendar. Each account has at most one feed:
//! creating another replaces it in the same transaction.

use jiff::Timestamp;
use medrelay_protocol::schedule::{AppointmentId, AppointmentStatus};
use medrelay_protocol::{PatientId, ProviderId, UserId};
use serde::{Deserialize, Serialize};

use crate::fault::Fault;
use crate::schedule::rules::{cell_key, cell_of};
use crate::schedule::{
    AppointmentRecord, PatientAppointment, PatientCell, ProviderAppointment, ProviderCell,
};
use crate::store::{Record, Store, StoreError, Table, WriteBatch, WriteError};

/// Whose appointments a feed shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "id")]
pub enum FeedOwner {
    /// A doctor's schedule.
    Provider(ProviderId),
    /// A patient's own appointments.
    Patient(PatientId),
}

/// A feed (table `calendar_feeds`, keyed by the hex SHA-256 of its token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedRecord {
    /// The account that made it; the feed dies with the account's access.
    pub user_id: UserId,
    /// Whose appointments it shows.
    pub owner: FeedOwner,
    /// A doctor's feed names the patients only when this is set.
    #[serde(default)]
    pub show_patient_names: bool,
    /// When it was made.
    pub created_at: Timestamp,
}

impl Record for FeedRecord {
    const TABLE: Table = Table::CalendarFeeds;
    const VERSION: u16 = 1;
}

/// An account's current feed (table `calendar_feed_links`, keyed by user id):
/// the key of its [`FeedRecord`], so replacing or disabling it finds the
/// old one without the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedLink {
    /// The feed's key in `calendar_feeds`.
    pub token_hash: String,
}

impl Record for FeedLink {
    const TABLE: Table = Table::CalendarFeedLinks;
    const VERSION: u16 = 1;
}

/// Makes `feed` the account's one feed, disabling the one it had, and
/// returns its token (to be shown once). Two creations racing for one
/// account cannot both win: each requires the link it replaces.
///
/// # Errors
/// [`WriteError::Storage`], or a failed precondition when another change
/// of the account's feed won the race.
pub async fn issue(store: &Store, feed: FeedRecord) -> Result<String, WriteError> {
    let token = crate::ids::new_secret(TOKEN_PREFIX);
    let key = crate::ids::secret_key(&token);
    let user = feed.user_id.as_str().to_owned();
    let mut batch = WriteBatch::new();
    unlink(store, &user, &mut batch).map_err(|e| WriteError::Storage(Fault::new(e)))?;
    batch.require_absent(Table::CalendarFeeds, key.clone());
    batch.put(key.clone(), &feed);
    batch.put(user, &FeedLink { token_hash: key });
    store.write(batch).await?;
    Ok(token)
}

/// Disables the account's feed; `false` when it had none.
///
/// # Errors
/// A storage error, or a lost race with another change of the feed.
pub async fn disable(store: &Store, user: &UserId) -> Result<bool, WriteError> {
    let mut batch = WriteBatch::new();
    let had = unlink(store, user.as_str(), &mut batch);
    if !had.map_err(|e| WriteError::Storage(Fault::new(e)))? {
        return Ok(false);
    }
    batch.delete(Table::CalendarFeedLinks, user.as_str());
    store.write(batch).await?;
    Ok(true)
}

/// The account's feed and its key, if it has one.
///
/// # Errors
/// A storage error.
pub fn current(store: &Store, user: &UserId) -> Result<Option<(String, FeedRecord)>, StoreError> {
    let Some(link) = store.get::<FeedLink>(user.as_str())? else {
        return Ok(None);
    };
    Ok(store
        .get::<FeedRecord>(&link.token_hash)?
        .map(|feed| (link.token_hash, feed)))
}

/// Adds to `batch` the removal of `user`'s current feed, required to be
/// still the current one; `false` when there is none.
fn unlink(store: &Store, user: &str, batch: &mut WriteBatch) -> Result<bool, StoreError> {
    match store.get::<FeedLink>(user)? {
        Some(link) => {
            batch.require_equal(user.to_owned(), &link);
            batch.delete(Table::CalendarFeeds, link.token_hash);
            Ok(true)
        }
        None => {
            batch.require_absent(Table::CalendarFeedLinks, user.to_owned());
            Ok(false)
        }
    }
}

/// From how many appointments a feed reads them on two threads.
const PARALLEL_FROM: usize = 1000;

/// What every feed token starts with (so a leaked one is recognisable).
pub const TOKEN_PREFIX: &str = "cal_";

/// What a calendar shows of an appointment.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarEntry {
    /// The appointment (the event's `UID`).
    pub appointment_id: AppointmentId,
    /// The doctor.
    pub provider_id: ProviderId,
    /// The patient.
    pub patient_id: PatientId,
    /// When it starts.
    pub start: Timestamp,
    /// When it ends.
    pub end: Timestamp,
    /// Its status.
    pub status: AppointmentStatus,
    /// When it was booked.
    pub booked_at: Timestamp,
    /// When it last changed.
    pub changed_at: Timestamp,
    /// Its changes, the booking included (the event's `SEQUENCE` + 1).
    pub changes: usize,
}

impl From<&AppointmentRecord> for CalendarEntry {
    fn from(a: &AppointmentRecord) -> Self {
        let at = |h: Option<&crate::schedule::HistoryEntry>| h.map_or(a.slot.start, |h| h.at);
        CalendarEntry {
            appointment_id: a.appointment_id.clone(),
            provider_id: a.provider_id.clone(),
            patient_id: a.patient_id.clone(),
            start: a.slot.start,
            end: a.slot.end,
            status: a.status,
            booked_at: at(a.history.first()),
            changed_at: at(a.history.last()),
            changes: a.changes(),
        }
    }
}

/// An appointment record as a feed reads it: only the fields a calendar
/// shows are built; the history's details are skipped. (A view: it can
/// never be written back, see [`crate::store::Records::get_view`].)
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEntry {
    appointment_id: AppointmentId,
    provider_id: ProviderId,
    patient_id: PatientId,
    slot: StoredSpan,
    status: AppointmentStatus,
    history: Vec<StoredStamp>,
    #[serde(default)]
    history_dropped: u32,
}

#[derive(Deserialize)]
struct StoredSpan {
    start: Timestamp,
    end: Timestamp,
}

#[derive(Deserialize)]
struct StoredStamp {
    at: Timestamp,
}

impl From<StoredEntry> for CalendarEntry {
    fn from(e: StoredEntry) -> Self {
        let at = |h: Option<&StoredStamp>| h.map_or(e.slot.start, |h| h.at);
        CalendarEntry {
            booked_at: at(e.history.first()),
            changed_at: at(e.history.last()),
            changes: e.history.len() + e.history_dropped as usize,
            appointment_id: e.appointment_id,
            provider_id: e.provider_id,
            patient_id: e.patient_id,
            start: e.slot.start,
            end: e.slot.end,
            status: e.status,
        }
    }
}

/// Which appointments a feed shows.
#[derive(Debug, Clone, Copy)]
pub struct FeedWindow {
    /// Appointments starting from here...
    pub from: Timestamp,
    /// ... up to here.
    pub to: Timestamp,
    /// Cancelled ones only when cancelled since.
    pub cancelled_since: Timestamp,
    /// Appointments made before this are looked for only among those that
    /// still hold their time (see [`feed_appointments`]).
    pub made_since: Timestamp,
}

/// The appointments `owner`'s feed shows, by start.
///
/// Read in one snapshot, from two ranges bounded by the window, never from
/// the owner's whole history, and each appointment's record once:
/// - those made since `made_since`, from the owner's index, whose keys
///   sort by when each appointment was made;
/// - older ones that still hold time in the window, from the owner's
///   5-minute cells between `from` and `to`.
///
/// An appointment is made at most a booking horizon before its start, so
/// with `made_since` a horizon before `from`, only one moved over and over
/// for longer than that and then cancelled or finished is left out.
///
/// # Errors
/// A storage error.
pub fn feed_appointments(
    store: &Store,
    owner: &FeedOwner,
    window: FeedWindow,
) -> Result<Vec<CalendarEntry>, StoreError> {
    let snapshot = store.snapshot()?;
    let (owner_key, cells, index) = match owner {
        FeedOwner::Provider(id) => (id.as_str(), ProviderCell::TABLE, ProviderAppointment::TABLE),
        FeedOwner::Patient(id) => (id.as_str(), PatientCell::TABLE, PatientAppointment::TABLE),
    };
    let records = snapshot.records::<AppointmentRecord>()?;
    let mut out = Vec::new();
    let push_shown = |out: &mut Vec<CalendarEntry>, entry: CalendarEntry| {
        let shown = match entry.status {
            s if s.holds_slot() => true,
            AppointmentStatus::Cancelled => entry.changed_at >= window.cancelled_since,
            _ => true,
        };
        if shown && entry.start >= window.from && entry.start <= window.to {
            out.push(entry);
        }
    };

    // Everything made since `made_since`, from the index: its keys sort by
    // when each appointment was made.
    let bound = crate::ids::lowest_id_at("apt", window.made_since);
    let prefix = format!("{owner_key}/");
    let mut recent = Vec::new();
    snapshot.for_each_between(
        index,
        &format!("{prefix}{bound}"),
        &format!("{owner_key}0"),
        |entry| {
            if let Ok(id) = AppointmentId::parse(&entry.key[prefix.len()..]) {
                recent.push(id);
            }
            Ok(())
        },
    )?;
    // Reading the records is most of a feed's cost: split across two
    // threads when there are enough to pay for the second one.
    let read = |ids: &[AppointmentId]| -> Result<Vec<CalendarEntry>, StoreError> {
        let mut entries = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(stored) = records.get_view::<StoredEntry>(id.as_str())? {
                entries.push(CalendarEntry::from(stored));
            }
        }
        Ok(entries)
    };
    let (first_half, second_half) = recent.split_at(recent.len() / 2);
    let (a, b) = if recent.len() >= PARALLEL_FROM {
        std::thread::scope(|scope| {
            let other = scope.spawn(|| read(second_half));
            let mine = read(first_half);
            (
                mine,
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            )
        })
    } else {
        (read(first_half), read(second_half))
    };
    for entry in a?.into_iter().chain(b?) {
        push_shown(&mut out, entry);
    }

    // Older ones still holding time in the window, from the owner's cells
    // (the newer ones were read above). An appointment's cells are
    // consecutive and name it, so each is looked up once.
    let first = cell_key(owner_key, cell_of(window.from));
    let last = cell_key(owner_key, cell_of(window.to) + 1);
    let mut previous: Option<AppointmentId> = None;
    let mut older = Vec::new();
    snapshot.for_each_between(cells, &first, &last, |entry| {
        // Both cell tables hold the same shape.
        let holder: ProviderCell = entry.decode()?;
        let id = holder.appointment_id;
        if previous.as_ref() != Some(&id) {
            if id.as_str() < bound.as_str() {
                older.push(id.clone());
            }
            previous = Some(id);
        }
        Ok(())
    })?;
    for id in older {
        if let Some(stored) = records.get_view::<StoredEntry>(id.as_str())? {
            let entry = CalendarEntry::from(stored);
            if entry.status.holds_slot() {
                push_shown(&mut out, entry);
            }
        }
    }
    out.sort_by(|a, b| {
        (a.start, a.appointment_id.as_str()).cmp(&(b.start, b.appointment_id.as_str()))
    });
    Ok(out)
}

#[cfg(test)]
mod tests;
