//! REST errors: every failure becomes `application/problem+json` (RFC 9457) with a stable
//! `code` and the request id. The mapping from core error kinds to HTTP statuses lives in
//! [`status_for`] and nowhere else; internal causes are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use levqor_core::{Error, ErrorKind, Violation};
use serde_json::json;

tokio::task_local! {
    /// The id of the request being served, for problem bodies and logs.
    pub static REQUEST_ID: String;
    /// Where the caller stands against their monthly quota, once their key was metered.
    pub static QUOTA: std::sync::Mutex<Option<levqor_core::quotas::QuotaStatus>>;
}

/// The current request's id, or `-` outside a request.
pub fn request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".into())
}

/// The one place core error kinds become HTTP statuses (DESIGN.md's table).
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::InsufficientCredits => StatusCode::PAYMENT_REQUIRED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Limit => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    violations: Vec<Violation>,
    retry_after: Option<u64>,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with a status that no core kind has (413, 415, 405 …).
    pub fn http(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            violations: Vec::new(),
            retry_after: None,
            details: None,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = status_for(e.kind);
        let detail = match e.kind {
            ErrorKind::Internal => {
                tracing::error!(request_id = %request_id(), error = %e.message, "internal error");
                "an internal error occurred; quote the request id when reporting it".to_string()
            }
            _ => e.message,
        };
        Self {
            status,
            code: e.code,
            detail,
            violations: e.violations,
            retry_after: e.retry_after_secs,
            details: e.details,
        }
    }
}

impl ApiError {
    /// The problem document (RFC 9457) of this error.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "type": format!("https://levqor.dev/problems/{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
            "request_id": request_id(),
        });
        if !self.violations.is_empty() {
            body["errors"] = json!(self.violations);
        }
        if let Some(serde_json::Value::Object(details)) = &self.details {
            for (k, v) in details {
                body.as_object_mut()
                    .expect("the body is an object")
                    .entry(k.clone())
                    .or_insert(v.clone());
            }
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
