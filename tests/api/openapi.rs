//! The OpenAPI document tells the truth: every route it lists, asked the
//! ways a client gets things wrong (no token, a body that is not JSON or
//! not an object, an empty object, an unknown query parameter, ids that
//! name nothing or are malformed), answers only with statuses the document
//! declares for that route.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

/// One way of asking.
struct Case {
    label: &'static str,
    /// What each `{param}` of the path becomes.
    id: &'static str,
    admin: bool,
    /// Content type and body, for routes that take one.
    body: Option<(&'static str, &'static str)>,
    query: &'static str,
}

const CASES: &[Case] = &[
    Case {
        label: "no token",
        id: "nothing_here",
        admin: false,
        body: Some(("application/json", "{}")),
        query: "",
    },
    Case {
        label: "unknown id, empty object",
        id: "nothing_here",
        admin: true,
        body: Some(("application/json", "{}")),
        query: "",
    },
    Case {
        label: "malformed id",
        id: "%20",
        admin: true,
        body: Some(("application/json", "{}")),
        query: "",
    },
    Case {
        label: "body not JSON",
        id: "nothing_here",
        admin: true,
        body: Some(("text/plain", "hello")),
        query: "",
    },
    Case {
        label: "broken JSON",
        id: "nothing_here",
        admin: true,
        body: Some(("application/json", "{\"a\":")),
        query: "",
    },
    Case {
        label: "JSON that is not an object",
        id: "nothing_here",
        admin: true,
        body: Some(("application/json", "[1,2]")),
        query: "",
    },
    Case {
        label: "unknown query parameter",
        id: "nothing_here",
        admin: true,
        body: None,
        query: "?surprise=1",
    },
];

fn fill(path: &str, id: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(id);
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn every_route_answers_only_with_statuses_the_document_declares() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (status, doc) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    let mut asked = 0;
    let mut undeclared = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        // Test-only routes (built with the fault-injection feature) panic
        // actors and move the clock on purpose.
        if path.starts_with("/api/test-faults/") {
            continue;
        }
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let declared: Vec<&String> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .collect();
            let takes_body = op.get("requestBody").is_some();
            for case in CASES {
                if case
                    .body
                    .is_some_and(|(kind, _)| kind != "application/json")
                    && !takes_body
                {
                    continue;
                }
                let url = app.url(&format!("{}{}", fill(path, case.id), case.query));
                let mut request = app.http.request(method.clone(), url);
                if case.admin {
                    request = request.bearer_auth(&admin);
                }
                if let (true, Some((kind, body))) = (takes_body, case.body) {
                    request = request.header("content-type", kind).body(body);
                }
                let response = request.send().await.expect("the server answers");
                let status = response.status().as_u16().to_string();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                asked += 1;
                if !declared.iter().any(|d| **d == status) {
                    undeclared.push(format!(
                        "{method} {path} ({}): {status} {body}; declared {declared:?}",
                        case.label
                    ));
                }
            }
        }
    }
    assert!(asked > 150, "only {asked} requests made");
    assert!(
        undeclared.is_empty(),
        "statuses the document does not declare:\n{}",
        undeclared.join("\n")
    );
}

/// A number the document declares for `field` of schema `name`.
fn declared(doc: &Value, name: &str, field: &str, key: &str) -> u64 {
    doc["components"]["schemas"][name]["properties"][field][key]
        .as_u64()
        .unwrap_or_else(|| panic!("{name}.{field} declares no {key}"))
}

#[tokio::test]
async fn values_at_the_declared_limits_are_accepted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, doc) = app.get("/api/openapi.json", None).await;
    // Sign-up: the shortest and the longest password, the longest name.
    let (min, max) = (
        declared(&doc, "SignupRequest", "password", "minLength"),
        declared(&doc, "SignupRequest", "password", "maxLength"),
    );
    let name_max = declared(&doc, "SignupRequest", "name", "maxLength");
    for (i, password) in ["p".repeat(min as usize), "p".repeat(max as usize)]
        .into_iter()
        .enumerate()
    {
        let body = serde_json::json!({
            "username": format!("limits{i}"),
            "email": format!("limits{i}@example.org"),
            "password": password,
            "name": "n".repeat(name_max as usize),
        });
        let (status, reply) = app.post("/api/auth/signup", body, None).await;
        assert_eq!(status, 201, "{reply}");
    }
    // One character past each limit is refused, naming the field.
    let body = serde_json::json!({
        "username": "limits9",
        "email": "limits9@example.org",
        "password": "p".repeat(min as usize - 1),
    });
    let (status, reply) = app.post("/api/auth/signup", body, None).await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (422, Some("password"))
    );
    // Providers: the shortest and the longest slot the document allows.
    let (lo, hi, step) = (
        declared(&doc, "CreateProvider", "slotMinutes", "minimum"),
        declared(&doc, "CreateProvider", "slotMinutes", "maximum"),
        declared(&doc, "CreateProvider", "slotMinutes", "multipleOf"),
    );
    assert_eq!(lo % step, 0);
    for minutes in [lo, hi] {
        let body = serde_json::json!({
            "name": "Dr. Limits",
            "timeZone": "UTC",
            "slotMinutes": minutes,
        });
        let (status, reply) = app.post("/api/providers", body, Some(&admin)).await;
        assert_eq!(status, 201, "{minutes} minutes: {reply}");
    }
}

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_schema_the_document_refers_to_is_in_it() {
    let app = spawn_app().await;
    let (_, doc) = app.get("/api/openapi.json", None).await;
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20, "only {} references", found.len());
    let missing: Vec<&String> = found
        .iter()
        .filter(|r| {
            let name = r.trim_start_matches("#/components/schemas/");
            doc["components"]["schemas"][name].is_null()
        })
        .collect();
    assert!(missing.is_empty(), "dangling references: {missing:?}");
    // The bodies that used to be declared as a bare object have schemas.
    for name in [
        "BookAppointment",
        "UpdateAppointment",
        "ContactInfo",
        "NotificationPreferences",
        "ErrorBody",
    ] {
        assert!(doc["components"]["schemas"][name].is_object(), "{name}");
    }
}
