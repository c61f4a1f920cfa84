//! Offline administration on a data folder (the server must not be running).

use anyhow::{Context, bail};
use medrelay_actors::accounts::{self, NewAccount, NewProfile, RegisterError, Registered};
use medrelay_actors::store::AuditCheck;
use medrelay_protocol::{Email, Role, Username};

use crate::auth::password::{PASSWORD_LEN, Passwords};
use crate::config::Settings;

/// What `admin create-user` needs.
pub struct CreateUser {
    /// Login name.
    pub username: String,
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
    /// Role.
    pub role: Role,
    /// Doctors: IANA time zone.
    pub time_zone: String,
}

/// Creates a user directly in the store of `settings.server.data_dir`.
///
/// # Errors
/// Invalid input, a taken username, or a store that cannot be opened (for
/// example because the server is running on it).
pub async fn create_user(settings: &Settings, new: CreateUser) -> anyhow::Result<Registered> {
    let username =
        Username::parse(&new.username).map_err(|e| anyhow::anyhow!("--username: {e}"))?;
    let email = Email::parse(&new.email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    if !PASSWORD_LEN.contains(&new.password.chars().count()) {
        bail!(
            "the password must be {} to {} characters",
            PASSWORD_LEN.start(),
            PASSWORD_LEN.end()
        );
    }
    let profile = match new.role {
        Role::Admin => NewProfile::Admin,
        Role::Doctor => {
            jiff::tz::TimeZone::get(&new.time_zone).map_err(|_| {
                anyhow::anyhow!("--time-zone: unknown IANA time zone {:?}", new.time_zone)
            })?;
            NewProfile::Doctor {
                provider_id: None,
                name: username.to_string(),
                specialization: "General practice".into(),
                contact_info: Default::default(),
                time_zone: new.time_zone,
            }
        }
        Role::Patient => NewProfile::Patient {
            name: username.to_string(),
            dob: None,
            contact_info: Default::default(),
            medical_history: Default::default(),
        },
    };
    let vault = std::sync::Arc::new(medrelay_actors::phi::Vault::open(&settings.key_file())?);
    let (store, _hub) = crate::app::open_store(settings, Some(vault.clone()))?;
    let password_hash = Passwords::new(1)?.hash(new.password).await?;
    let result = accounts::register(
        &store,
        &vault,
        NewAccount {
            username,
            email,
            password_hash,
            profile,
        },
    )
    .await;
    store.close().await;
    match result {
        Ok(r) => Ok(r),
        Err(RegisterError::UsernameTaken) => bail!("that username is already taken"),
        Err(e) => Err(e).context("could not create the user"),
    }
}

/// Checks the audit log's hash chain in `settings.server.data_dir`.
///
/// # Errors
/// The first broken link (its entry number and what is wrong), or a store
/// that cannot be opened.
pub async fn verify_audit(settings: &Settings) -> anyhow::Result<u64> {
    // No vault: it writes nothing, and kept events stay as sealed as they are.
    let (store, _hub) = crate::app::open_store(settings, None)?;
    let check = store.verify_audit();
    store.close().await;
    match check.context("could not read the audit log")? {
        AuditCheck::Intact { entries } => Ok(entries),
        AuditCheck::Broken { seq, reason } => {
            bail!("the audit log is broken at entry {seq}: {reason}")
        }
    }
}

/// Recounts every analytics figure from the records and writes the
/// recount in place of the kept figures. Returns the rows written and how
/// many rows the recount changed (0 when the figures were right).
///
/// # Errors
/// A store that cannot be opened (a server running on it) or a storage error.
pub async fn rebuild_stats(settings: &Settings) -> anyhow::Result<(usize, usize)> {
    use medrelay_actors::stats::rebuild;
    let (store, _hub) = crate::app::open_store(settings, None)?;
    let result = async {
        // A store an earlier release wrote: its claims' first answers first.
        medrelay_actors::billing::claims::note_first_decisions(&store).await?;
        let before = rebuild::kept(&store)?;
        let after = rebuild::rebuild(&store).await?;
        let rows = after.len();
        let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let changed = keys
            .into_iter()
            .filter(|k| before.get(*k) != after.get(*k))
            .count();
        anyhow::Ok((rows, changed))
    }
    .await;
    store.close().await;
    result.context("could not recount the analytics figures")
}

/// Adds a key to the PHI key file and makes it current. Opens the store
/// first, so it refuses while a server (which holds the old keys in
/// memory) runs on the data folder.
///
/// # Errors
/// A store that cannot be opened, or a key file that cannot be rewritten.
pub async fn rotate_key(settings: &Settings) -> anyhow::Result<u32> {
    let (store, _hub) = crate::app::open_store(settings, None)?;
    let key = medrelay_actors::phi::add_key(&settings.key_file());
    store.close().await;
    key.context("could not add a key")
}
