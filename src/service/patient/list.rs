//! `GET /api/patients`: the patients the caller may see, by id, with
//! exact-match search. Only patients the caller may see are ever
//! candidates, so neither a page nor its cursor names anyone else.

use std::collections::BTreeSet;

use medrelay_actors::audit::Action;
use medrelay_actors::channels::Viewer;
use medrelay_actors::patients::{self, Search, StoredPatient};
use medrelay_actors::schedule::{AppointmentRecord, ProviderAppointment, indexed_ids};
use medrelay_protocol::patient::PatientList;
use medrelay_protocol::{Email, PatientId, Role};

use super::view;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, durably, entity, entry};
use crate::service::schedule::viewer;
use crate::state::AppState;

/// The search and paging of `GET /api/patients`.
#[derive(Debug, Default)]
pub struct PatientQuery {
    /// Exact full name (case and spacing ignored).
    pub name: Option<String>,
    /// Exact date of birth.
    pub dob: Option<jiff::civil::Date>,
    /// Exact e-mail.
    pub email: Option<Email>,
    /// Exact phone (E.164).
    pub phone: Option<medrelay_protocol::profile::Phone>,
    /// Return patients whose id sorts after this one.
    pub after: Option<PatientId>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// The patients the caller may see, by id, optionally narrowed by exact
/// name, date of birth, e-mail or phone.
///
/// # Errors
/// 422 for a bad limit; 500 on a read failure.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    query: PatientQuery,
) -> Result<PatientList, AppError> {
    let max = state.settings.records.page_limit;
    let limit = query.limit.unwrap_or(max);
    if limit == 0 || limit > max {
        return Err(AppError::invalid("limit", format!("must be 1 to {max}")));
    }
    let viewer = viewer(state, principal)?;
    let searches: Vec<Search<'_>> = [
        query.name.as_deref().map(Search::Name),
        query.dob.map(Search::Dob),
        query.email.as_ref().map(|e| Search::Email(e.as_str())),
        query.phone.as_ref().map(|p| Search::Phone(p.as_str())),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Candidates in id order: a search's matches, or everyone the caller may see.
    let (candidates, more) = candidates(state, &viewer, searches.first(), query.after, limit)?;
    let mut patients = Vec::new();
    for id in &candidates {
        let stored = state.store.get::<StoredPatient>(id.as_str())?;
        let Some(stored) = stored.filter(|s| s.deleted_at.is_none()) else {
            continue;
        };
        let patient = patients::open(&state.vault, stored).map_err(AppError::internal)?;
        let key_of = |s: &Search<'_>| s.prefix(&state.vault);
        let own = [
            Some(Search::Name(&patient.name)),
            patient.dob.map(Search::Dob),
            patient
                .contact_info
                .email
                .as_ref()
                .map(|e| Search::Email(e.as_str())),
            patient
                .contact_info
                .phone
                .as_ref()
                .map(|p| Search::Phone(p.as_str())),
        ];
        let own: Vec<String> = own.iter().flatten().map(key_of).collect();
        if searches.iter().skip(1).all(|s| own.contains(&key_of(s))) {
            patients.push(view(patient));
        }
    }
    // One entry for the search, under every patient it returned; its
    // criteria by kind, never by value.
    let kinds: Vec<&str> = [
        ("name", query.name.is_some()),
        ("dob", query.dob.is_some()),
        ("email", query.email.is_some()),
        ("phone", query.phone.is_some()),
    ]
    .into_iter()
    .filter_map(|(kind, sent)| sent.then_some(kind))
    .collect();
    let returned = patients.iter().map(|p| p.patient_id.clone()).collect();
    let mut about = entity("Patient", None, returned);
    about.detail = Some(if kinds.is_empty() {
        "list".to_owned()
    } else {
        format!("search by {}", kinds.join(", "))
    });
    durably(state, &entry(principal, origin, Action::E, about)).await?;
    Ok(PatientList {
        patients,
        next: more
            .then(|| candidates.last().map(|id| id.to_string()))
            .flatten(),
    })
}

/// Up to `limit` candidate ids after `after`, and whether more may follow.
fn candidates(
    state: &AppState,
    viewer: &Viewer,
    search: Option<&Search<'_>>,
    after: Option<PatientId>,
    limit: usize,
) -> Result<(Vec<PatientId>, bool), AppError> {
    let after_cursor = |id: &PatientId| after.as_ref().is_none_or(|a| id > a);
    let ids: Vec<PatientId> = if viewer.role == Role::Admin {
        match search {
            Some(search) => {
                let (store, vault) = (&state.store, &state.vault);
                patients::find(store, vault, *search, after.as_ref(), limit + 1)?
            }
            None => state
                .store
                .scan::<StoredPatient>(after.as_ref().map(|a| a.as_str()), limit + 1)?
                .into_iter()
                .map(|(_, p)| p.patient_id)
                .collect(),
        }
    } else {
        // Only the patients the caller may see are ever candidates, so
        // neither a page nor its cursor names anyone else.
        let visible = visible_to(state, viewer)?;
        let matching: Option<BTreeSet<PatientId>> = match search {
            Some(search) => Some(
                patients::find(&state.store, &state.vault, *search, None, SEARCH_CAP)?
                    .into_iter()
                    .collect(),
            ),
            None => None,
        };
        visible
            .into_iter()
            .filter(|id| after_cursor(id))
            .filter(|id| matching.as_ref().is_none_or(|m| m.contains(id)))
            .take(limit + 1)
            .collect()
    };
    let more = ids.len() > limit;
    Ok((ids.into_iter().take(limit).collect(), more))
}

/// The most matches of one search a doctor's or patient's list considers.
const SEARCH_CAP: usize = 10_000;

/// The patients a doctor or patient may see, by id: a patient themselves,
/// a doctor those of their appointments.
fn visible_to(state: &AppState, viewer: &Viewer) -> Result<BTreeSet<PatientId>, AppError> {
    let mut ids = BTreeSet::new();
    match viewer.role {
        Role::Patient => ids.extend(viewer.patient_id.clone()),
        Role::Doctor => {
            if let Some(provider) = &viewer.provider_id {
                let store = &state.store;
                for apt in indexed_ids::<ProviderAppointment>(store, provider.as_str(), usize::MAX)?
                {
                    if let Some(a) = store.get::<AppointmentRecord>(apt.as_str())? {
                        ids.insert(a.patient_id);
                    }
                }
            }
        }
        Role::Admin => {}
    }
    Ok(ids)
}
