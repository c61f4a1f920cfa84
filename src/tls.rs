//! HTTPS: the server's certificate, read again when its files change.
//!
//! A renewed certificate (certbot, a secrets mount) takes effect within
//! [`RELOAD_EVERY`] without a restart: the files' modification time and size
//! are checked that often, and new connections get the new certificate once
//! it loads. A file caught half-written fails to load, is logged, and the
//! old certificate stays until the next change.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// How often the files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The current certificate, handed to each new handshake.
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamp when `current` was read, so a change between the
    /// start and the first check is not missed.
    loaded: Stamp,
}

/// Modification time and size of the certificate and the key file.
type Stamp = [Option<(SystemTime, u64)>; 2];

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Loads the certificate and key.
    ///
    /// # Errors
    /// A message naming `server.tls_cert` or `server.tls_key` when a file
    /// cannot be read, holds no PEM item of its kind, or the key does not
    /// match the certificate.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let loaded = stamp(&files);
        let current = RwLock::new(Arc::new(read(&files, &provider)?));
        Ok(Arc::new(Self {
            files,
            provider,
            current,
            loaded,
        }))
    }

    /// A TLS 1.2/1.3 acceptor serving HTTP/1.1 with the current certificate.
    ///
    /// # Errors
    /// When the crypto provider offers no safe protocol version (never with
    /// the built-in one).
    pub fn acceptor(self: &Arc<Self>) -> anyhow::Result<TlsAcceptor> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Checks the files every [`RELOAD_EVERY`] and loads them again when
    /// either changed; runs until the task is aborted.
    pub async fn watch(self: Arc<Self>) {
        let mut seen = self.loaded;
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            let now = stamp(&self.files);
            if now == seen {
                continue;
            }
            seen = now;
            match read(&self.files, &self.provider) {
                Ok(key) => {
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => tracing::warn!(
                    error = %format!("{e:#}"),
                    "the TLS files changed but could not be loaded; still serving the previous certificate"
                ),
            }
        }
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    [&files.cert, &files.key].map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn read(files: &TlsFiles, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let cert = &files.cert;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| anyhow!("server.tls_cert: {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(anyhow!(
            "server.tls_cert: {} holds no PEM certificate",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow!("server.tls_key: {}: {e}", files.key.display()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| anyhow!("server.tls_key: does not fit server.tls_cert: {e}"))
}
