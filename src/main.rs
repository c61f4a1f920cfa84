//! The `medrelay` command: `serve`, and offline `admin` tasks.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use medrelay::admin::{self, CreateUser};
use medrelay::app::Application;
use medrelay::config::Settings;
use medrelay_protocol::Role;

// mimalloc rather than glibc's malloc: the store writer and the request
// tasks allocate and free short-lived buffers (pages, JSON, frames) across
// threads, and glibc's allocator took about 18% of the server's CPU under
// audited reads (`_int_malloc`, `_int_free`, `malloc_consolidate`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "medrelay", version, about = "Real-time clinic backend")]
struct Cli {
    /// A TOML file layered over the built-in defaults.
    #[arg(long, global = true, value_name = "FILE", env = "MEDRELAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve {
        /// Overrides server.listen (port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Overrides server.data_dir.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[cfg(feature = "demo")]
        /// Starts a demo clinic instead: a fresh temporary data folder (or
        /// an empty --data-dir), doctors, patients and a week of
        /// appointments made through the API; prints the URLs and logins.
        #[arg(long)]
        demo: bool,
        #[cfg(feature = "demo")]
        /// With --demo: keeps booking, moving and cancelling at a gentle
        /// rate, so boards move on their own.
        #[arg(long, requires = "demo")]
        demo_traffic: bool,
    },
    /// Offline administration on a data folder.
    Admin {
        #[command(subcommand)]
        task: AdminTask,
    },
}

#[derive(Subcommand)]
enum AdminTask {
    /// Creates a user (e.g. the first admin). Reads the password from stdin
    /// unless --password is given.
    CreateUser {
        /// Overrides server.data_dir.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        username: String,
        #[arg(long, value_enum, default_value = "admin")]
        role: RoleArg,
        /// Defaults to <username>@example.invalid.
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        password: Option<String>,
        /// Doctors: IANA time zone of their availability.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
    },
    /// Adds a key to the PHI key file and makes it current (the server must
    /// be stopped); the next start re-seals older values in the background
    /// and then drops the older keys.
    RotateKey {
        /// Overrides server.data_dir.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Checks every link of the audit log's hash chain; exits 1 and names
    /// the first broken entry when one does not hold.
    VerifyAudit {
        /// Overrides server.data_dir.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Recounts every analytics figure from the records (after a restore,
    /// or to check them); the server must be stopped.
    RebuildStats {
        /// Overrides server.data_dir.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Doctor,
    Patient,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Doctor => Role::Doctor,
            RoleArg::Patient => Role::Patient,
        }
    }
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("medrelay: {e:#}");
            return ExitCode::from(2);
        }
    };
    medrelay::telemetry::init_logging(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "could not start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                listen,
                data_dir,
                #[cfg(feature = "demo")]
                demo,
                #[cfg(feature = "demo")]
                demo_traffic,
            } => {
                if let Some(listen) = listen {
                    settings.server.listen = listen;
                }
                #[cfg(feature = "demo")]
                if demo {
                    // The printed passwords open this server: it listens on
                    // this machine only, unless --listen says otherwise
                    // (not MEDRELAY__SERVER__LISTEN, meant for production).
                    settings.server.listen =
                        listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
                    let options = medrelay::demo::Options {
                        traffic: demo_traffic,
                        data_dir,
                    };
                    return medrelay::demo::run(settings, options, shutdown_signal()).await;
                }
                if let Some(dir) = data_dir {
                    settings.server.data_dir = dir;
                }
                let app = Application::build(settings).await?;
                app.run_until(shutdown_signal()).await
            }
            Command::Admin {
                task:
                    AdminTask::CreateUser {
                        data_dir,
                        username,
                        role,
                        email,
                        password,
                        time_zone,
                    },
            } => {
                if let Some(dir) = data_dir {
                    settings.server.data_dir = dir;
                }
                let password = match password {
                    Some(p) => p,
                    None => read_password()?,
                };
                let email = email.unwrap_or_else(|| format!("{username}@example.invalid"));
                let created = admin::create_user(
                    &settings,
                    CreateUser {
                        username,
                        email,
                        password,
                        role: role.into(),
                        time_zone,
                    },
                )
                .await?;
                tracing::info!(user = %created.user_id, role = %created.role, "user created");
                Ok(())
            }
            Command::Admin {
                task: AdminTask::RotateKey { data_dir },
            } => {
                if let Some(dir) = data_dir {
                    settings.server.data_dir = dir;
                }
                let key = admin::rotate_key(&settings).await?;
                println!("key {key} is now current; start the server to re-seal older values");
                Ok(())
            }
            Command::Admin {
                task: AdminTask::VerifyAudit { data_dir },
            } => {
                if let Some(dir) = data_dir {
                    settings.server.data_dir = dir;
                }
                let entries = admin::verify_audit(&settings).await?;
                println!("audit log intact: {entries} entries, every link holds");
                Ok(())
            }
            Command::Admin {
                task: AdminTask::RebuildStats { data_dir },
            } => {
                if let Some(dir) = data_dir {
                    settings.server.data_dir = dir;
                }
                let (rows, changed) = admin::rebuild_stats(&settings).await?;
                println!(
                    "analytics figures recounted: {rows} rows, {changed} of them had differed"
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Memory is freed in bursts here: every argon2 hash allocates ~19 MiB on a
/// blocking-pool thread, and the store writer frees page buffers by the
/// thousand. mimalloc keeps freed memory for reuse for `purge_delay` (1 s in
/// its version 3) before returning it, and only when that thread allocates
/// again, so an idle server held tens of MiB it no longer used: after the
/// `notify` benchmark's start-up over 200,000 reminders, 51 MiB instead of
/// glibc's 4. Returning it at once held 7 MiB, with no throughput lost that
/// the benchmarks could see. (Transparent huge pages, which inflated the
/// same figure, are off at build time: the `no_thp` feature.)
fn return_freed_memory_at_once() {
    // `mi_option_purge_delay`: slot 15 of mimalloc's option enum, kept
    // stable across its versions 2 and 3 (removed options stay as
    // `deprecated_*` placeholders).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mi_option_set only stores a tuning value; it is called first
    // thing in main, before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "no password on stdin (or pass --password)"
    );
    Ok(password)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
