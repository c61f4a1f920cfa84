//! The answers every route of a kind can give, declared on each operation
//! of the generated document: one route's `#[utoipa::path]` lists what its
//! handler decides, but not what the layers around it add (the JSON body
//! extractor, the path-id parsing, the bearer check, the per-IP rate limit,
//! the internal-error net). Without these, a client generated from the
//! document would not expect answers the server really gives.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, Ref, RefOr, ResponseBuilder};

use super::exempt_from_ip_limit;

/// Adds the shared answers to every operation that can give them.
pub fn declare_shared_responses(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            declare(path, operation);
        }
    }
}

fn declare(path: &str, op: &mut Operation) {
    let mut add = |status: &str, why: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(why));
    };
    let params = op.parameters.as_deref().unwrap_or_default();
    let in_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let in_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
    if op.request_body.is_some() {
        add(
            "400",
            "The body is not JSON, or not the object this route takes.",
        );
        add("413", "The body is larger than `server.body_limit_bytes`.");
        add("415", "The body is not `application/json`.");
        add(
            "422",
            "A field's value is not acceptable; `field` names it.",
        );
    }
    if in_path {
        add("404", "Nothing has the id in the path.");
        add("422", "An id in the path is malformed; `field` names it.");
    }
    if in_query {
        add(
            "400",
            "An unknown query parameter, or one of the wrong type.",
        );
        add(
            "422",
            "A query parameter's value is not acceptable; `field` names it.",
        );
    }
    if op.security.is_some() {
        add(
            "401",
            "No bearer token, or an expired, revoked or invalid one.",
        );
    }
    if !exempt_from_ip_limit(path) {
        add(
            "429",
            "Too many requests from this address; see `Retry-After`.",
        );
    }
    add(
        "500",
        "A failure on the server; the body quotes a request id.",
    );
    // Refused here by a board replica (it serves live boards only), and by
    // any node that is starting or stopping.
    add("503", "Not available on this node right now.");
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::content::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            )
            .build(),
    )
}
