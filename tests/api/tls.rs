//! HTTPS and WSS served by medrelay itself (`server.tls_cert`,
//! `server.tls_key`): a self-signed certificate, HSTS, a WebSocket over
//! TLS, the certificate replaced on disk while serving, and bad files
//! refused at start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use medrelay::app::Application;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

/// A fresh self-signed certificate for `localhost`: (certificate, key) PEM.
fn self_signed() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

fn write_pair(dir: &Path, (cert, key): &(String, String)) {
    // Written beside and renamed over, as a certificate renewal does, so the
    // server never reads half a file.
    for (name, text) in [("cert.pem", cert), ("key.pem", key)] {
        let part = dir.join(format!("{name}.part"));
        std::fs::write(&part, text).unwrap();
        std::fs::rename(&part, dir.join(name)).unwrap();
    }
}

/// An HTTPS client that trusts only `cert` and finds `localhost` at `addr`.
fn client(cert: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).unwrap()])
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

/// A server on HTTPS with a fresh self-signed pair, written to the
/// returned folder (which a test may write a new pair into).
async fn https_app() -> (tempfile::TempDir, (String, String), TestApp) {
    let tls_dir = tempfile::tempdir().unwrap();
    let pair = self_signed();
    write_pair(tls_dir.path(), &pair);
    let files = tls_dir.path().to_owned();
    let app = spawn_app_with(move |s| {
        s.server.tls_cert = Some(files.join("cert.pem"));
        s.server.tls_key = Some(files.join("key.pem"));
    })
    .await;
    (tls_dir, pair, app)
}

#[tokio::test]
async fn serves_https_and_wss_with_hsts_and_reloads_a_replaced_certificate() {
    let (tls_dir, first, app) = https_app().await;
    let base = format!("https://localhost:{}", app.addr.port());

    // HTTPS, with HSTS on answers and errors alike.
    let https = client(&first.0, app.addr);
    let health = https.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let missing = https.get(format!("{base}/api/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("strict-transport-security"));
    let token = login(&https, &base, ADMIN).await;

    // Plain HTTP on the TLS port gets no answer.
    assert!(app.http.get(app.url("/healthz")).send().await.is_err());

    // WSS: the same protocol over TLS.
    let mut ws = wss(&first.0, app.addr).await;
    ws.send(Message::Text(
        json!({"type": "auth", "id": "a", "token": token})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["re"], "a");
    assert_eq!(reply["ok"], true, "{reply}");

    // A renewed certificate takes effect without a restart; connections
    // open before it keep working.
    let second = self_signed();
    write_pair(tls_dir.path(), &second);
    let renewed = client(&second.0, app.addr);
    let reloaded = eventually(Duration::from_secs(10), || {
        let renewed = renewed.clone();
        let url = format!("{base}/healthz");
        async move { renewed.get(url).send().await.is_ok() }
    })
    .await;
    assert!(reloaded, "the new certificate was never served");
    let stale = client(&first.0, app.addr);
    assert!(stale.get(format!("{base}/healthz")).send().await.is_err());
    ws.send(Message::Text(
        json!({"type": "ping", "id": "p"}).to_string().into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["re"], "p");

    // A broken file is logged and ignored: the last good one stays (a new
    // client, so the handshake is made again).
    std::fs::write(tls_dir.path().join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(medrelay::tls::RELOAD_EVERY * 2).await;
    let fresh = client(&second.0, app.addr);
    let health = fresh.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn silent_connections_from_one_address_hold_up_no_one_else() {
    let (_tls_dir, pair, app) = https_app().await;
    let cap = medrelay::listener::HANDSHAKES_PER_PEER;

    // One address opens connections and never says hello.
    let mut silent = Vec::new();
    for _ in 0..cap + 4 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        silent.push(socket.connect(app.addr).await.unwrap());
    }
    // All at once, well within the handshake timeout: waiting in their
    // handshake, no answer yet; over the cap, closed.
    let reads = silent.iter_mut().map(|stream| async move {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::io::AsyncReadExt::read(stream, &mut byte),
        )
        .await;
        match read {
            Err(_) => true,
            Ok(n) => {
                assert_eq!(n.unwrap_or(0), 0);
                false
            }
        }
    });
    let open = futures_util::future::join_all(reads)
        .await
        .into_iter()
        .filter(|waiting| *waiting)
        .count();
    assert_eq!(open, cap, "connections left waiting for their handshake");

    // Another address is served at once, not after the silent ones time
    // out (HANDSHAKE_TIMEOUT).
    let base = format!("https://localhost:{}", app.addr.port());
    let health = tokio::time::timeout(
        Duration::from_secs(2),
        client(&pair.0, app.addr)
            .get(format!("{base}/healthz"))
            .send(),
    )
    .await
    .expect("served while the silent connections wait")
    .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn plain_http_sends_no_hsts() {
    let app = spawn_app().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(!health.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn bad_tls_files_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed();
    let (_, other_key) = self_signed();
    std::fs::write(tls_dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(tls_dir.path().join("key.pem"), &other_key).unwrap();
    std::fs::write(tls_dir.path().join("junk.pem"), "junk").unwrap();
    let cases: [(&str, &str, &str); 4] = [
        ("cert.pem", "key.pem", "server.tls_key: does not fit"),
        ("junk.pem", "key.pem", "server.tls_cert"),
        ("cert.pem", "missing.pem", "server.tls_key"),
        (
            "cert.pem",
            "",
            "server.tls_key: needed with server.tls_cert",
        ),
    ];
    for (cert, key, expected) in cases {
        let mut settings = test_settings(dir.path());
        settings.server.tls_cert = Some(tls_dir.path().join(cert));
        settings.server.tls_key = (!key.is_empty()).then(|| tls_dir.path().join(key));
        let error = match Application::build(settings).await {
            Ok(_) => panic!("{cert} + {key:?} started"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains(expected), "{cert} + {key:?}: {error}");
        // The key's text never reaches the message.
        assert!(!error.contains("PRIVATE KEY"), "{error}");
    }
}

type Wss = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// A WebSocket over TLS to `/ws`, trusting only `cert`.
async fn wss(cert: &str, addr: SocketAddr) -> Wss {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut request = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "medrelay.v1".parse().unwrap());
    let (ws, response) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "medrelay.v1");
    ws
}

async fn next_json(ws: &mut Wss) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}
