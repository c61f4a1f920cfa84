//! Loading and validating the layered configuration.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_load() {
    let s = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.log.format, LogFormat::Pretty);
}

#[test]
fn environment_overrides_defaults() {
    let s = Settings::load_from(
        None,
        env(&[
            ("MEDRELAY__SERVER__LISTEN", "0.0.0.0:9000"),
            ("MEDRELAY__WEBSOCKET__MAX_FRAME_BYTES", "1024"),
            ("OTHER__SERVER__LISTEN", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(s.server.listen.port(), 9000);
    assert_eq!(s.websocket.max_frame_bytes, 1024);
}

#[test]
fn bad_values_name_their_key() {
    let err = Settings::load_from(
        None,
        env(&[("MEDRELAY__WEBSOCKET__HEARTBEAT_SECS", "soon")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("heartbeat_secs"), "{err}");
    let err = Settings::load_from(None, env(&[("MEDRELAY__AUTH__ACCESS_TTL_SECS", "0")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth.access_ttl_secs"), "{err}");
    let err = Settings::load_from(None, env(&[("MEDRELAY__SERVER__LISTEN", "nowhere")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("listen"), "{err}");
}

#[test]
fn files_layer_between_defaults_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medrelay.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:7000\"\nbody_limit_bytes = 10\n",
    )
    .unwrap();
    let s = Settings::load_from(
        Some(&path),
        env(&[("MEDRELAY__SERVER__LISTEN", "127.0.0.1:7001")]),
    )
    .unwrap();
    assert_eq!(s.server.listen.port(), 7001);
    assert_eq!(s.server.body_limit_bytes, 10);
    assert!(Settings::load_from(Some(&dir.path().join("missing.toml")), env(&[])).is_err());
}

#[test]
fn hub_rings_start_no_larger_than_they_may_grow() {
    let s = Settings::load_from(None, env(&[])).unwrap();
    assert!(s.store.hub_initial_capacity <= s.store.hub_capacity);
    let err = Settings::load_from(
        None,
        env(&[
            ("MEDRELAY__STORE__HUB_CAPACITY", "8"),
            ("MEDRELAY__STORE__HUB_INITIAL_CAPACITY", "16"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("store.hub_initial_capacity"), "{err}");
}

#[test]
fn cors_origins_are_exact_origins_or_the_setting_is_refused() {
    let s = Settings::load_from(None, env(&[])).unwrap();
    assert!(
        s.server.cors_origins().unwrap().is_empty(),
        "none by default"
    );
    let s = Settings::load_from(
        None,
        env(&[(
            "MEDRELAY__SERVER__CORS_ORIGINS",
            "https://App.example.org, http://localhost:5173",
        )]),
    )
    .unwrap();
    assert_eq!(
        s.server.cors_origins().unwrap(),
        ["https://app.example.org", "http://localhost:5173"]
    );
    for bad in [
        "*",
        "https://*.example.org",
        "app.example.org",
        "https://a.example/path",
        "https://",
    ] {
        let err = Settings::load_from(None, env(&[("MEDRELAY__SERVER__CORS_ORIGINS", bad)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.cors_origins"), "{bad}: {err}");
    }
}
