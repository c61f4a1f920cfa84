//! A headless chromium per test, through its own chromedriver.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

/// One browser test at a time (see the crate's comment).
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A chromedriver process; each [`Driver::browser`] is a separate chromium
/// with its own profile (its own session storage).
pub struct Driver {
    _turn: MutexGuard<'static, ()>,
    _process: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver on a free port (waits for this test's turn).
    pub async fn start() -> Driver {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let process = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (scripts/test.sh installs Debian's chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver {
            _turn: turn,
            _process: process,
            url,
        }
    }

    /// A new headless chromium.
    pub async fn browser(&self) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         "--no-first-run", "--disable-extensions"],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session");
        Browser { client }
    }
}

fn chromedriver() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// One chromium window.
pub struct Browser {
    pub client: Client,
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Runs `body` as a function's body in the page and returns its value.
    pub async fn eval(&self, body: &str) -> Value {
        self.client.execute(body, Vec::new()).await.unwrap()
    }

    /// The attribute `name` of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.getAttribute({}) : null;",
            json!(css),
            json!(name)
        );
        self.eval(&script).await.as_str().map(str::to_owned)
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        let script = format!("return document.querySelectorAll({}).length;", json!(css));
        self.eval(&script).await.as_u64().unwrap() as usize
    }

    /// The text of the first element matching `css` ("" when none).
    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        );
        self.eval(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until `check` (a JS expression) is true; how long it took.
    pub async fn until(&self, check: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        let script = format!("return !!({check});");
        loop {
            if self.eval(&script).await == json!(true) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "not within {limit:?}: {check}\npage: {}",
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Types into the field `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Waits until the page's socket is live (`#status`).
    pub async fn live(&self, limit: Duration) {
        self.until(&has("#status", "data-state", "live"), limit)
            .await;
    }

    /// Waits for the page's sign-in form and signs in with it (the board,
    /// `/app` and `/admin` share the form's ids).
    pub async fn sign_in(&self, user: &str, password: &str) {
        self.until(&present("#login-form"), Duration::from_secs(10))
            .await;
        self.type_into("#login-username", user).await;
        self.type_into("#login-password", password).await;
        self.click("#login-form button[type=\"submit\"]").await;
    }

    /// Saves the window, made tall enough to show most of a page, as
    /// `target/screenshots/<name>.png` in the repository.
    pub async fn screenshot(&self, name: &str) {
        self.client.set_window_size(1280, 1800).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// A JS expression: an element matches `css`.
pub fn present(css: &str) -> String {
    format!("!!document.querySelector({})", json!(css))
}

/// A JS expression: no element matches `css`.
pub fn absent(css: &str) -> String {
    format!("!document.querySelector({})", json!(css))
}

/// A JS expression: the element `css` exists and its `attr` is `value`.
pub fn has(css: &str, attr: &str, value: &str) -> String {
    format!(
        "(document.querySelector({}) || {{getAttribute: () => null}}).getAttribute({}) === {}",
        json!(css),
        json!(attr),
        json!(value)
    )
}
