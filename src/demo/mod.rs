//! Demo mode (`serve --demo [--demo-traffic]`): a server on a data folder of
//! its own, seeded with a small clinic, and a summary of where to look and
//! how to sign in.
//!
//! The demo is a *client* of the server it starts. Only the first admin is
//! made offline (with [`crate::admin::create_user`], as `admin create-user`
//! does, before the server opens the folder); everything else, doctors,
//! hours, display tokens, patients and appointments, goes through the public
//! HTTP API, as any clinic would make it. There is no demo endpoint, and
//! nothing here is reachable from a normal `serve`. Every password is random
//! for the run (from the OS) and printed once, on stdout; the
//! log names no patient.
//!
//! # Limits
//! The server keeps its configured rate limits and lock-out: a demo server
//! is still a server, and the browsers pointed at it share its per-IP limit
//! with the demo's own requests. Seeding makes some 150 requests in a few
//! seconds, around `rate_limit.per_ip_burst`, so the client waits out a 429
//! as its `Retry-After` says and sends the request again; bookings are made
//! by each patient for themselves, which spreads them over the per-user
//! limit. The demo signs in only with the passwords it set, and lock-out
//! counts failed logins only, so it never locks an account.

mod client;
mod random;
mod seed;
mod session;
mod summary;
mod traffic;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use medrelay_protocol::Role;
use secrecy::SecretString;
use tokio::sync::oneshot;
use tokio::task::JoinError;

use crate::admin::{CreateUser, create_user};
use crate::app::Application;
use crate::config::Settings;

use self::client::Api;
use self::random::Rng;

/// The demo admin's username.
const ADMIN_USERNAME: &str = "admin";

/// What `serve --demo` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep booking, moving and cancelling appointments, one change every one
    /// to three seconds, until the server stops (`--demo-traffic`).
    pub traffic: bool,
    /// The data folder given with `--data-dir`: it must be empty or not
    /// exist yet, and is kept after the demo. `None`: a new folder
    /// `medrelay-demo-<random>` under [`std::env::temp_dir`], removed when
    /// the demo stops.
    pub data_dir: Option<PathBuf>,
}

/// Runs the demo: creates the admin offline, starts the server (on
/// `settings.server.listen`), seeds the clinic over HTTP, prints the pages
/// and logins on stdout, and, with [`Options::traffic`], keeps changing
/// appointments. Serves until `shutdown` resolves, then stops the server
/// gracefully and removes a temporary data folder.
///
/// `settings.server.data_dir` is replaced by the demo's folder (see
/// [`Options::data_dir`]). So that a fictional clinic never reaches real
/// people or systems, the demo also keeps the PHI key file and the
/// notification outbox inside that folder, serves plain HTTP, and turns off
/// SMTP, Twilio, FCM, NATS and the card gateway, whatever the configuration
/// says.
///
/// # Errors
/// A data folder that is not empty or cannot be made, a server that cannot
/// start, a seed step the server refuses, or the server's own error.
pub async fn run(
    mut settings: Settings,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let folder = DataFolder::choose(options.data_dir)?;
    settings.server.data_dir = folder.path.clone();
    isolate(&mut settings);
    let result = serve(settings, &folder, options.traffic, shutdown).await;
    folder.finish();
    result
}

/// The demo's data folder, and whether it is the demo's to remove.
struct DataFolder {
    path: PathBuf,
    temporary: bool,
}

impl DataFolder {
    /// `given` if it is empty or new; else a new folder in the system's
    /// temporary folder (only the owner may enter it).
    fn choose(given: Option<PathBuf>) -> anyhow::Result<DataFolder> {
        if let Some(path) = given {
            match std::fs::read_dir(&path) {
                Ok(mut entries) => {
                    if entries.next().is_some() {
                        bail!(
                            "the demo seeds a new clinic and needs an empty data folder, and {} is not empty (serve it without --demo, or give another --data-dir)",
                            path.display()
                        );
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("could not read the folder {}", path.display()));
                }
            }
            return Ok(DataFolder {
                path,
                temporary: false,
            });
        }
        let path = std::env::temp_dir().join(format!("medrelay-demo-{}", random::suffix()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&path)
            .with_context(|| format!("could not create the demo folder {}", path.display()))?;
        Ok(DataFolder {
            path,
            temporary: true,
        })
    }

    /// Removes a temporary folder (the server has stopped by now).
    fn finish(self) {
        if !self.temporary {
            return;
        }
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => tracing::info!(folder = %self.path.display(), "demo data folder removed"),
            Err(e) => tracing::warn!(
                folder = %self.path.display(), error = %e,
                "could not remove the demo data folder"
            ),
        }
    }
}

/// Keeps the demo's fictional clinic to itself: its patient-data key and
/// its outbox in its own folder, and no message, event or payment sent
/// anywhere (booking confirmations and reminders land in the outbox). It
/// serves plain HTTP on the configured address.
fn isolate(settings: &mut Settings) {
    // Plain HTTP: the demo's client and its printed links say http://, and
    // a production certificate does not name the loopback address.
    settings.server.tls_cert = None;
    settings.server.tls_key = None;
    // Its pages are its own: no other origin, no static metrics token.
    settings.server.cors_origins = String::new();
    settings.server.metrics_token = SecretString::default();
    settings.records.key_file = String::new();
    let n = &mut settings.notifications;
    n.outbox_dir = String::new();
    n.email.host = String::new();
    n.sms.account_sid = String::new();
    n.push.project_id = String::new();
    settings.nats.url = String::new();
    settings.billing.card.secret_key = SecretString::default();
    settings.billing.card.webhook_secret = SecretString::default();
}

/// Creates the admin, runs the server, seeds, prints, runs the traffic;
/// returns when the server has stopped.
async fn serve(
    settings: Settings,
    folder: &DataFolder,
    with_traffic: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (admin, email) = seed::new_login(ADMIN_USERNAME);
    create_user(
        &settings,
        CreateUser {
            username: admin.username.clone(),
            email,
            password: admin.password.clone(),
            role: Role::Admin,
            time_zone: "UTC".to_owned(),
        },
    )
    .await
    .context("could not create the demo admin")?;
    let app = Application::build(settings).await?;
    let addr = reachable(
        app.local_addr()
            .context("could not read the bound address")?,
    );
    let base = format!("http://{addr}");
    let api = Api::new(base.clone())?;
    let mut rng = Rng::new();

    // The server stops on the caller's signal, or when the demo gives up
    // (`stop`, also sent by dropping it).
    let (stop, stopped) = oneshot::channel::<()>();
    let interrupted = Arc::new(AtomicBool::new(false));
    let signal = {
        let interrupted = interrupted.clone();
        async move {
            tokio::select! {
                () = shutdown => interrupted.store(true, Ordering::SeqCst),
                _ = stopped => {}
            }
        }
    };
    let mut server = tokio::spawn(app.run_until(signal));

    let seeded = tokio::select! {
        seeded = seed::seed(&api, admin, &mut rng) => seeded,
        // The server stopped (or failed) before the clinic was ready.
        joined = &mut server => return finished(joined),
    };
    let clinic = match seeded {
        Ok(clinic) => clinic,
        Err(e) => {
            let _ = stop.send(());
            let served = finished(server.await);
            if interrupted.load(Ordering::SeqCst) {
                // Stopped while seeding: the seed's last request met a
                // closing server, which is no failure of the demo.
                tracing::info!("demo stopped before the clinic was seeded");
                return served;
            }
            if let Err(failure) = served {
                let detail = format!("{failure:#}");
                tracing::warn!(error = %detail, "the demo server failed too");
            }
            return Err(e.context("could not seed the demo clinic"));
        }
    };

    let place = summary::Place {
        base: &base,
        data_dir: &folder.path,
        temporary: folder.temporary,
        traffic: with_traffic,
    };
    summary::print(&summary::render(&place, &clinic));

    if with_traffic {
        tokio::select! {
            () = traffic::run(&api, clinic, &mut rng) => {}
            joined = &mut server => return finished(joined),
        }
    }
    let served = finished(server.await);
    // Dropping `stop` would stop the server: it lives until the server has.
    drop(stop);
    served
}

/// The server task's outcome.
fn finished(joined: Result<anyhow::Result<()>, JoinError>) -> anyhow::Result<()> {
    joined.context("the demo server's task failed")?
}

/// `addr` as a client reaches it: a wildcard listen address (`0.0.0.0`,
/// `::`) is reached on the loopback address of its family.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let loopback = if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        };
        addr.set_ip(loopback);
    }
    addr
}
