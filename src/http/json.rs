//! A JSON body extractor whose every rejection is a clear JSON 4xx naming the
//! field: 415 for a wrong content type, 413 over the size limit, 400 for
//! malformed JSON or a wrong type, with the path of the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// `axum::Json`, with medrelay's rejections.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                AppError::BadRequest {
                    message: format!("could not read the body: {rejection}"),
                    field: None,
                }
            }
        })?;
        parse(&bytes).map(Json)
    }
}

/// Parses JSON bytes into `T`, naming the failing field's path.
///
/// # Errors
/// [`AppError::BadRequest`] with the field's path and serde's reason.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end().map_err(|e| AppError::BadRequest {
                message: format!("malformed JSON: {e}"),
                field: None,
            })?;
            Ok(value)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let field = (path != "." && !path.is_empty()).then_some(path);
            let message = match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    format!("malformed JSON: {inner}")
                }
                _ => strip_position(&inner.to_string()),
            };
            Err(AppError::BadRequest { message, field })
        }
    }
}

/// serde_json appends " at line 1 column 42", which means nothing to a client
/// that was told the field's path instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string that does not parse: 400 with axum's explanation.
pub fn bad_query(e: axum::extract::rejection::QueryRejection) -> AppError {
    AppError::BadRequest {
        message: e.body_text(),
        field: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        count: u32,
    }

    #[test]
    fn names_the_path_of_a_wrong_type() {
        let err = parse::<Body>(br#"{"inner":{"count":"x"}}"#).unwrap_err();
        match err {
            AppError::BadRequest { field, message } => {
                assert_eq!(field.as_deref(), Some("inner.count"));
                assert!(message.contains("invalid type"), "{message}");
                assert!(!message.contains("line"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_json_and_trailing_garbage_are_bad_requests() {
        for body in [&b"{"[..], b"{\"inner\":{\"count\":1}} x", b""] {
            assert!(matches!(
                parse::<Body>(body),
                Err(AppError::BadRequest { .. })
            ));
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse::<Body>(br#"{"inner":{"count":1},"admin":true}"#).unwrap_err();
        assert!(err.to_string().contains("admin"), "{err}");
    }
}
