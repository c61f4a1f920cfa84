//! Calendar feeds: creating, showing and disabling your private feed URL,
//! and serving a feed to the calendar that subscribed to it.
//!
//! A feed is fetched with its token only (calendars have no medrelay
//! account), so the token is the credential: 256 random bits, stored
//! hashed, one per account, and it stops working when the account no
//! longer owns the schedule or patient it shows. Requests name it in the
//! path, which the request log never writes (it logs the route pattern).

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use medrelay_actors::accounts::{ProviderRecord, UserRecord};
use medrelay_actors::audit::{Action, Agent};
use medrelay_actors::calendar::{
    self, CalendarEntry, FeedOwner, FeedRecord, FeedWindow, TOKEN_PREFIX,
};
use medrelay_actors::patients;
use medrelay_actors::store::WriteError;
use medrelay_protocol::calendar::{CreateFeed, FeedCreated, FeedView};
use medrelay_protocol::{Channel, PatientId, ProviderId, Role};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::AppError;
use crate::ical::{Calendar, Event};
use crate::service::audit::{Origin, durably, entity, entry_by};
use crate::service::schedule::viewer;
use crate::state::AppState;

/// Creates the caller's feed (replacing any earlier one) and returns its
/// URL under `base_url`, shown this once.
///
/// # Errors
/// 403 for an account with no schedule or patient profile of its own;
/// 422 `showPatientNames` from a patient.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    body: CreateFeed,
    base_url: &str,
) -> Result<FeedCreated, AppError> {
    let owner = owner_of(state, principal)?;
    if body.show_patient_names && matches!(owner, FeedOwner::Patient(_)) {
        return Err(AppError::invalid(
            "showPatientNames",
            "only a doctor's feed can name patients",
        ));
    }
    let feed = FeedRecord {
        user_id: principal.user_id.clone(),
        owner,
        show_patient_names: body.show_patient_names,
        created_at: Timestamp::now(),
    };
    let token = calendar::issue(&state.store, feed.clone())
        .await
        .map_err(lost_race)?;
    tracing::info!(user = %principal.user_id, "calendar feed created");
    Ok(FeedCreated {
        url: format!(
            "{}/api/calendar/{token}.ics",
            base_url.trim_end_matches('/')
        ),
        show_patient_names: feed.show_patient_names,
        created_at: feed.created_at,
    })
}

/// The caller's feed settings (never its URL).
///
/// # Errors
/// 404 when the caller has no feed.
pub fn current(state: &AppState, principal: &Principal) -> Result<FeedView, AppError> {
    match calendar::current(&state.store, &principal.user_id)? {
        Some((_, feed)) => Ok(FeedView {
            show_patient_names: feed.show_patient_names,
            created_at: feed.created_at,
        }),
        None => Err(AppError::NotFound("you have no calendar feed".into())),
    }
}

/// Disables the caller's feed: its URL answers 404 from now on.
///
/// # Errors
/// 404 when the caller has no feed.
pub async fn disable(state: &AppState, principal: &Principal) -> Result<(), AppError> {
    if !calendar::disable(&state.store, &principal.user_id)
        .await
        .map_err(lost_race)?
    {
        return Err(AppError::NotFound("you have no calendar feed".into()));
    }
    tracing::info!(user = %principal.user_id, "calendar feed disabled");
    Ok(())
}

/// A served feed.
#[derive(Debug)]
pub enum Served {
    /// The client's copy is current.
    NotModified {
        /// The feed's entity tag.
        etag: String,
    },
    /// The feed.
    Feed {
        /// Its entity tag.
        etag: String,
        /// The iCalendar text.
        body: String,
    },
}

/// The feed whose URL file name is `file` (`<token>.ics`), or 304 when
/// `if_none_match` names its current entity tag. A doctor's tag is
/// computed from what can change their feed (their board's head, the
/// patients' head when names are shown, their profile, the day, the
/// settings), so an unchanged feed is answered without reading it; a
/// patient's small feed is tagged by its text.
///
/// # Errors
/// 404 for an unknown, disabled or orphaned feed; 429 past the feed's
/// download rate.
pub async fn serve(
    state: &Arc<AppState>,
    file: &str,
    if_none_match: Option<&str>,
    origin: &Origin,
) -> Result<Served, AppError> {
    let started = std::time::Instant::now();
    let gone = || AppError::NotFound("no such calendar feed".into());
    let token = file.strip_suffix(".ics").ok_or_else(gone)?;
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 64 {
        return Err(gone());
    }
    let key = medrelay_actors::ids::secret_key(token);
    let feed = state.store.get::<FeedRecord>(&key)?.ok_or_else(gone)?;
    let user = state
        .store
        .get::<UserRecord>(feed.user_id.as_str())?
        .filter(|u| owns(u, &feed.owner))
        .ok_or_else(gone)?;
    if let FeedOwner::Patient(p) = &feed.owner
        && !patients::is_live(&state.store, p)?
    {
        // A deleted patient is hidden at once, their calendar included.
        return Err(gone());
    }
    state
        .limits
        .check_feed(&key)
        .map_err(AppError::RateLimited)?;
    let now = Timestamp::now();
    let provider = match &feed.owner {
        FeedOwner::Provider(id) => Some(
            state
                .store
                .get::<ProviderRecord>(id.as_str())?
                .ok_or_else(gone)?,
        ),
        FeedOwner::Patient(_) => None,
    };
    // A doctor's feed is large: its tag is computed from what can change
    // it, before reading it. A patient's is small, and names doctors whose
    // changes its owner's channel does not see: its tag is its text's.
    let etag = match &feed.owner {
        FeedOwner::Provider(_) => Some(entity_tag(state, &key, &feed, provider.as_ref(), now)?),
        FeedOwner::Patient(_) => None,
    };
    if let Some(etag) = &etag
        && if_none_match.is_some_and(|v| matches_tag(v, etag))
    {
        return Ok(Served::NotModified { etag: etag.clone() });
    }
    let settings = &state.settings;
    // The window moves once a day, with the entity tag.
    let today = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(AppError::internal)?
        .timestamp();
    let from = today - SignedDuration::from_hours(24 * i64::from(settings.calendar.days_behind));
    let horizon = SignedDuration::from_hours(24 * i64::from(settings.schedule.horizon_days));
    let window = FeedWindow {
        from,
        to: today + horizon + SignedDuration::from_hours(24),
        cancelled_since: today
            - SignedDuration::from_hours(24 * i64::from(settings.calendar.cancelled_kept_days)),
        made_since: from - horizon,
    };
    // Thousands of records read and written out: off the async workers,
    // which carry every socket.
    let job = (state.clone(), feed.clone());
    let (body, named) = tokio::task::spawn_blocking(move || {
        let (state, feed) = job;
        let mut appointments = calendar::feed_appointments(&state.store, &feed.owner, window)?;
        bound(&mut appointments, state.settings.calendar.max_events, today);
        render(&state, &feed, provider.as_ref(), &appointments)
    })
    .await
    .map_err(AppError::internal)??;
    let etag = etag.unwrap_or_else(|| tag_of(&[body.as_bytes()]));
    if etag_unchanged(&feed, if_none_match, &etag) {
        return Ok(Served::NotModified { etag });
    }
    if !named.is_empty() {
        // The doctor's calendar receives patients' names: an export of
        // patient data, recorded before it leaves.
        let agent = Agent {
            user_id: Some(user.user_id.clone()),
            role: Some(user.role),
            token_id: Some("calendar-feed".into()),
            ..Agent::default()
        };
        let what = entity("CalendarFeed", None, named);
        durably(state, &entry_by(agent, origin, Action::E, what)).await?;
    }
    metrics::histogram!("calendar_feed_seconds").record(started.elapsed().as_secs_f64());
    Ok(Served::Feed { etag, body })
}

/// Keeps at most `max` of `appointments` (by start): the oldest past ones
/// go first, then the furthest ahead, so what is coming stays.
fn bound(appointments: &mut Vec<CalendarEntry>, max: usize, today: Timestamp) {
    if appointments.len() <= max {
        return;
    }
    let past = appointments.iter().take_while(|a| a.start < today).count();
    let drop_past = (appointments.len() - max).min(past);
    appointments.drain(..drop_past);
    appointments.truncate(max);
}

/// A patient's name for a doctor's feed: none for one deleted (hidden) or
/// whose record cannot be opened (logged; the feed still goes).
fn patient_name(state: &AppState, id: &PatientId) -> Option<String> {
    let live = patients::is_live(&state.store, id);
    let loaded = match live {
        Ok(true) => patients::load(&state.store, &state.vault, id).map_err(|e| e.to_string()),
        Ok(false) => return None,
        Err(e) => Err(e.to_string()),
    };
    match loaded {
        Ok(patient) => patient.map(|p| p.name),
        Err(e) => {
            tracing::warn!(patient = %id, error = %e, "a feed names a patient it cannot read");
            None
        }
    }
}

/// Whose appointments the caller's own feed shows.
fn owner_of(state: &AppState, principal: &Principal) -> Result<FeedOwner, AppError> {
    let me = viewer(state, principal)?;
    if principal.display_board().is_some() {
        return Err(AppError::Forbidden("a display has no calendar".into()));
    }
    match (me.role, me.provider_id, me.patient_id) {
        (Role::Doctor, Some(p), _) => Ok(FeedOwner::Provider(p)),
        (Role::Patient, _, Some(p)) => Ok(FeedOwner::Patient(p)),
        _ => Err(AppError::Forbidden(
            "only a doctor with a schedule or a patient has a calendar feed".into(),
        )),
    }
}

/// Whether `user` still owns what the feed shows.
fn owns(user: &UserRecord, owner: &FeedOwner) -> bool {
    match owner {
        FeedOwner::Provider(p) => user.provider_id.as_ref() == Some(p),
        FeedOwner::Patient(p) => user.patient_id.as_ref() == Some(p),
    }
}

fn lost_race(e: WriteError) -> AppError {
    match e {
        WriteError::Exists { .. } | WriteError::Changed { .. } | WriteError::Missing { .. } => {
            AppError::Conflict {
                message: "your calendar feed changed at the same time; try again".into(),
                field: None,
            }
        }
        e => AppError::internal(e),
    }
}

/// A strong entity tag over everything the feed's text depends on.
fn entity_tag(
    state: &AppState,
    key: &str,
    feed: &FeedRecord,
    provider: Option<&ProviderRecord>,
    now: Timestamp,
) -> Result<String, AppError> {
    let channel = match &feed.owner {
        FeedOwner::Provider(p) => Channel::Board(p.clone()),
        FeedOwner::Patient(p) => Channel::Patient(p.clone()),
    };
    // Patients' names change on the clinic-wide patients channel.
    let names_head = if feed.show_patient_names {
        state.store.channel_head(&Channel::Patients)?
    } else {
        0
    };
    let settings = &state.settings;
    let parts = [
        env!("CARGO_PKG_VERSION").to_owned(),
        key.to_owned(),
        feed.show_patient_names.to_string(),
        state.store.channel_head(&channel)?.to_string(),
        names_head.to_string(),
        // The window moves, and cancellations age out, once a day.
        now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string(),
        format!(
            "{}/{}/{}/{}",
            settings.calendar.days_behind,
            settings.calendar.cancelled_kept_days,
            settings.calendar.max_events,
            settings.schedule.horizon_days
        ),
        settings.billing.clinic_name.clone(),
        settings.billing.clinic_address.clone(),
        provider.map_or_else(String::new, |p| format!("{}/{}", p.name, p.time_zone)),
    ];
    let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    Ok(tag_of(&parts))
}

/// A strong entity tag: the first 128 bits of the SHA-256 of `parts`.
fn tag_of(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether a patient's feed, tagged by its text, is what the client has.
fn etag_unchanged(feed: &FeedRecord, if_none_match: Option<&str>, etag: &str) -> bool {
    matches!(feed.owner, FeedOwner::Patient(_))
        && if_none_match.is_some_and(|v| matches_tag(v, etag))
}

/// Whether an `If-None-Match` value names `etag` (or is `*`).
fn matches_tag(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// The feed's text, and the patients it names.
fn render(
    state: &AppState,
    feed: &FeedRecord,
    provider: Option<&ProviderRecord>,
    appointments: &[CalendarEntry],
) -> Result<(String, Vec<PatientId>), AppError> {
    let clinic = &state.settings.billing;
    let location = Some(clinic.clinic_location());
    let mut doctors: HashMap<ProviderId, Option<ProviderRecord>> = HashMap::new();
    if provider.is_none() {
        for a in appointments {
            if !doctors.contains_key(&a.provider_id) {
                let d = state.store.get::<ProviderRecord>(a.provider_id.as_str())?;
                doctors.insert(a.provider_id.clone(), d);
            }
        }
    }
    let mut names: HashMap<PatientId, Option<String>> = HashMap::new();
    let mut events = Vec::with_capacity(appointments.len());
    for a in appointments {
        let doctor = provider.or_else(|| doctors.get(&a.provider_id).and_then(Option::as_ref));
        let zone = doctor.map_or("UTC", |d| d.time_zone.as_str());
        let summary = match &feed.owner {
            FeedOwner::Patient(_) => match doctor {
                Some(d) => format!("Appointment with {}", d.name),
                None => "Appointment".to_owned(),
            },
            FeedOwner::Provider(_) if feed.show_patient_names => {
                if !names.contains_key(&a.patient_id) {
                    names.insert(a.patient_id.clone(), patient_name(state, &a.patient_id));
                }
                match &names[&a.patient_id] {
                    Some(name) => format!("Appointment: {name}"),
                    None => "Appointment: a former patient".to_owned(),
                }
            }
            FeedOwner::Provider(_) => "Appointment".to_owned(),
        };
        events.push(Event::for_appointment(a, zone, summary, location.clone()));
    }
    let name = match (&feed.owner, provider) {
        (FeedOwner::Provider(_), Some(p)) => format!("{}: {}", clinic.clinic_name, p.name),
        _ => format!("{}: my appointments", clinic.clinic_name),
    };
    let text = Calendar {
        method: None,
        name: Some(name),
        events,
    }
    .render();
    let named = names
        .into_iter()
        .filter_map(|(id, name)| name.map(|_| id))
        .collect();
    Ok((text, named))
}
