//! The pages' HTTP side: served from the binary with headers that make the
//! browser hold them to their promises (no inline code, no other origin, no
//! framing except the board), and every file they name is there.

use crate::helpers::*;

/// The pages and whether a waiting-room system may frame them.
const PAGES: &[(&str, bool)] = &[("/board/prov001", true), ("/app", false), ("/admin", false)];

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn pages_come_with_a_strict_policy_and_every_file_they_name() {
    let app = spawn_app().await;
    for &(path, frameable) in PAGES {
        let page = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(
            header(&page, "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&page, "referrer-policy"), Some("no-referrer"));
        let policy = header(&page, "content-security-policy").unwrap().to_owned();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(
            header(&page, "x-frame-options").is_none(),
            frameable,
            "{path}"
        );
        assert_eq!(
            !policy.contains("frame-ancestors 'none'"),
            frameable,
            "{path}: {policy}"
        );
        let html = page.text().await.unwrap();
        // Nothing inline for the policy to refuse.
        assert!(!html.contains(" style="), "{path}");
        assert!(!inline_handler(&html), "{path}: an inline handler");
        for script in html.split("<script").skip(1) {
            assert!(script.contains("src=\"/pages/"), "{path}: an inline script");
        }
        for name in referenced(&html) {
            check_file(&app, &name).await;
        }
    }
}

/// Whether a tag carries an `on...=` attribute.
fn inline_handler(html: &str) -> bool {
    html.split('<').skip(1).any(|tag| {
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        tag.split_whitespace().any(|attribute| {
            attribute.strip_prefix("on").is_some_and(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            })
        })
    })
}

/// The `/pages/` files an HTML or JS file names (src, href, imports).
fn referenced(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for marker in ["\"/pages/", "'./"] {
        for part in text.split(marker).skip(1) {
            let end = part.find(['"', '\'']).unwrap();
            names.push(part[..end].to_owned());
        }
    }
    names
}

async fn check_file(app: &TestApp, name: &str) {
    let file = app
        .http
        .get(app.url(&format!("/pages/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200, "/pages/{name}");
    assert_eq!(header(&file, "x-content-type-options"), Some("nosniff"));
    let kind = header(&file, "content-type").unwrap().to_owned();
    let body = file.text().await.unwrap();
    if name.ends_with(".js") {
        assert_eq!(kind, "text/javascript; charset=utf-8");
        for import in referenced(&body) {
            Box::pin(check_file(app, &import)).await;
        }
    } else {
        assert_eq!(kind, "text/css; charset=utf-8", "/pages/{name}");
    }
}

#[tokio::test]
async fn unknown_files_and_impossible_boards_are_404s() {
    let app = spawn_app().await;
    for path in [
        "/pages/nope.js",
        "/pages/..%2FCargo.toml",
        "/pages/",
        "/board/not%20an%20id",
    ] {
        let (status, body) = app.get(path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}
