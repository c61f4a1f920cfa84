//! `[server]`: where and how the server listens.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use secrecy::SecretString;
use serde::Deserialize;

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data folder.
    pub data_dir: PathBuf,
    /// Largest request body.
    pub body_limit_bytes: usize,
    /// Shutdown grace period.
    pub shutdown_grace_secs: u64,
    /// Static bearer token for `/metrics` (empty: admins only).
    pub metrics_token: SecretString,
    /// Origins allowed to call the API from a browser, comma-separated
    /// (see [`ServerSettings::cors_origins`]).
    pub cors_origins: String,
    /// PEM certificate chain for HTTPS and WSS (with `tls_key`); unset:
    /// plain HTTP, for a proxy in front.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

/// The certificate and key files of HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl ServerSettings {
    /// The origins allowed to call the API from a browser (empty: none).
    ///
    /// # Errors
    /// A message naming `server.cors_origins` for an entry that is not
    /// `http(s)://host[:port]`, or a wildcard.
    pub fn cors_origins(&self) -> anyhow::Result<Vec<String>> {
        self.cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|origin| {
                let host = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"))
                    .unwrap_or_default();
                let bad = |c: char| c == '/' || c == '*' || c.is_whitespace() || c.is_control();
                if host.is_empty() || host.contains(bad) || !origin.is_ascii() {
                    bail!(
                        "server.cors_origins: {origin:?} is not an origin like https://app.example.org (exact origins only, no wildcard or path)"
                    );
                }
                Ok(origin.to_ascii_lowercase())
            })
            .collect()
    }

    /// Checks the section as the settings load (see `Settings::validate`).
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        self.cors_origins()?;
        self.tls()?;
        Ok(())
    }

    /// The HTTPS files, when both are set (an empty value counts as unset,
    /// so an environment variable can switch TLS off).
    ///
    /// # Errors
    /// A message naming the key when only one of `server.tls_cert` and
    /// `server.tls_key` is set.
    pub fn tls(&self) -> anyhow::Result<Option<TlsFiles>> {
        let set = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        match (set(&self.tls_cert), set(&self.tls_key)) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (Some(_), None) => bail!("server.tls_key: needed with server.tls_cert"),
            (None, Some(_)) => bail!("server.tls_cert: needed with server.tls_key"),
        }
    }
}
