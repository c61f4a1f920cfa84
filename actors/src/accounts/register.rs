//! Sign-up: a user and the profile for its role, in one transaction.

use jiff::Timestamp;
use jiff::civil::Date;
use medrelay_protocol::profile::{ContactInfo, MedicalHistory};
use medrelay_protocol::{Channel, Email, Event, PatientId, ProviderId, Role, UserId, Username};

use crate::billing;
use crate::ids::new_id;
use crate::patients::history;
use crate::patients::invites::{self, InviteRecord};
use crate::patients::{self, PatientRecord, StoredPatient};
use crate::phi::Vault;
use crate::store::{Store, StoreError, Table, WriteBatch, WriteError};

use super::*;

/// The profile a new account comes with.
#[derive(Debug, Clone)]
pub enum NewProfile {
    /// A patient profile.
    Patient {
        /// Full name.
        name: String,
        /// Date of birth.
        dob: Option<Date>,
        /// Contact details.
        contact_info: ContactInfo,
        /// Medical history.
        medical_history: MedicalHistory,
    },
    /// A provider profile.
    Doctor {
        /// The id to use; generated when absent.
        provider_id: Option<ProviderId>,
        /// Display name.
        name: String,
        /// Specialization.
        specialization: String,
        /// Contact details.
        contact_info: ContactInfo,
        /// IANA time zone (already validated).
        time_zone: String,
    },
    /// The profile a desk registration made, claimed with an invitation.
    Claim {
        /// The invitation's key (see [`invites::key_of`]).
        invite_key: String,
        /// The invitation as read: sign-up fails if it changed since.
        invite: InviteRecord,
        /// The profile as read (without a login): sign-up fails if it changed since.
        patient: Box<StoredPatient>,
        /// The claim's audit entry (JSON), written with it.
        audit: Vec<u8>,
    },
    /// Admins have no profile.
    Admin,
}

/// A validated sign-up.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Login name.
    pub username: Username,
    /// E-mail.
    pub email: Email,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Profile (decides the role).
    pub profile: NewProfile,
}

/// What [`register`] created.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// The new user.
    pub user_id: UserId,
    /// Its role.
    pub role: Role,
    /// Its patient profile.
    pub patient_id: Option<PatientId>,
    /// Its provider profile.
    pub provider_id: Option<ProviderId>,
}

/// Why [`register`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The username is held by another account.
    #[error("username is already taken")]
    UsernameTaken,
    /// The requested provider id exists.
    #[error("providerId is already taken")]
    ProviderIdTaken,
    /// The invitation was spent, or its patient claimed, since it was read.
    #[error("this invitation was used already")]
    InviteSpent,
    /// The store failed.
    #[error(transparent)]
    Store(WriteError),
}

/// Creates an account and its profile in one transaction.
///
/// # Errors
/// [`RegisterError`] when the username or provider id is taken or the write fails.
pub async fn register(
    store: &Store,
    vault: &Vault,
    new: NewAccount,
) -> Result<Registered, RegisterError> {
    let now = Timestamp::now();
    let user_id = UserId::parse(&new_id("usr")).expect("generated ids are valid");
    let mut batch = WriteBatch::new();
    batch.require_absent(Table::Usernames, new.username.as_str());
    let (role, patient_id, provider_id) = match new.profile {
        NewProfile::Patient {
            name,
            dob,
            contact_info,
            medical_history,
        } => {
            let patient_id = PatientId::parse(&new_id("pat")).expect("generated ids are valid");
            let profile = PatientRecord {
                patient_id: patient_id.clone(),
                user_id: Some(user_id.clone()),
                name,
                dob,
                contact_info,
                address: None,
                medical_history,
                created_at: now,
                updated_at: None,
            };
            patients::write(&mut batch, vault, None, &profile, false);
            billing::open_account(&mut batch, &patient_id, now);
            history::append(
                &mut batch,
                store,
                vault,
                &patient_id,
                &user_id,
                now,
                &profile.medical_history,
            )
            .map_err(|e| RegisterError::Store(WriteError::Storage(crate::fault::Fault::new(e))))?;
            batch.event(
                Channel::Patients,
                Event::PatientRegistered {
                    patient_id: patient_id.clone(),
                    at: now,
                },
            );
            (Role::Patient, Some(patient_id), None)
        }
        NewProfile::Claim {
            invite_key,
            invite,
            patient,
            audit,
        } => {
            batch.audit(vec![patient.patient_id.to_string()], audit);
            invites::spend(&mut batch, &invite_key, &invite, now);
            batch.require_equal(patient.patient_id.as_str(), &*patient);
            let linked = StoredPatient {
                user_id: Some(user_id.clone()),
                ..*patient
            };
            batch.put(linked.patient_id.as_str(), &linked);
            (Role::Patient, Some(linked.patient_id), None)
        }
        NewProfile::Doctor {
            provider_id,
            name,
            specialization,
            contact_info,
            time_zone,
        } => {
            let provider_id = provider_id.unwrap_or_else(|| {
                ProviderId::parse(&new_id("prv")).expect("generated ids are valid")
            });
            batch.require_absent(Table::Providers, provider_id.as_str());
            batch.put(
                provider_id.as_str(),
                &ProviderRecord {
                    provider_id: provider_id.clone(),
                    user_id: Some(user_id.clone()),
                    name,
                    specialization,
                    contact_info,
                    time_zone,
                    slot_minutes: default_slot_minutes(),
                    availability: Vec::new(),
                    exceptions: Vec::new(),
                    created_at: now,
                },
            );
            (Role::Doctor, None, Some(provider_id))
        }
        NewProfile::Admin => (Role::Admin, None, None),
    };
    batch.put(
        new.username.as_str(),
        &UsernameEntry {
            user_id: user_id.clone(),
        },
    );
    batch.put(
        user_id.as_str(),
        &UserRecord {
            user_id: user_id.clone(),
            username: new.username.clone(),
            email: new.email,
            password_hash: new.password_hash,
            role,
            patient_id: patient_id.clone(),
            provider_id: provider_id.clone(),
            created_at: now,
        },
    );
    batch.event(
        Channel::Users,
        Event::UserRegistered {
            user_id: user_id.clone(),
            username: new.username,
            role,
            at: now,
        },
    );
    match store.write(batch).await {
        Ok(_) => Ok(Registered {
            user_id,
            role,
            patient_id,
            provider_id,
        }),
        Err(WriteError::Exists { table, .. }) if table == Table::Providers.name() => {
            Err(RegisterError::ProviderIdTaken)
        }
        Err(WriteError::Exists { .. }) => Err(RegisterError::UsernameTaken),
        Err(WriteError::Changed { .. }) => Err(RegisterError::InviteSpent),
        Err(e) => Err(RegisterError::Store(e)),
    }
}

/// Looks a user up by login name.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn find_by_username(
    store: &Store,
    username: &Username,
) -> Result<Option<UserRecord>, StoreError> {
    match store.get::<UsernameEntry>(username.as_str())? {
        Some(entry) => store.get::<UserRecord>(entry.user_id.as_str()),
        None => Ok(None),
    }
}
