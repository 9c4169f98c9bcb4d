//! gRPC errors: the mapping of core error kinds to status codes (DESIGN.md's table) lives in
//! [`code_for`] and nowhere else. A status carries the stable machine code as
//! `google.rpc.ErrorInfo` (`reason`), every bad field as `google.rpc.BadRequest`, the wait of
//! a limit as `google.rpc.RetryInfo`, and the request id as `google.rpc.RequestInfo`. Internal
//! causes are logged, never sent.

use levqor_core::{Error, ErrorKind};
use std::collections::HashMap;
use std::time::Duration;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// gRPC canonical status codes used by Levqor (numeric values as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    /// 3
    InvalidArgument = 3,
    /// 5
    NotFound = 5,
    /// 6
    AlreadyExists = 6,
    /// 7
    PermissionDenied = 7,
    /// 8
    ResourceExhausted = 8,
    /// 9
    FailedPrecondition = 9,
    /// 10
    Aborted = 10,
    /// 13
    Internal = 13,
    /// 14
    Unavailable = 14,
    /// 16
    Unauthenticated = 16,
}

/// The one place core error kinds become gRPC codes.
pub fn code_for(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Invalid => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::InsufficientCredits => Code::FailedPrecondition,
        ErrorKind::Conflict => Code::Aborted,
        ErrorKind::Limit => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The domain of every `ErrorInfo` Levqor sends.
pub const ERROR_DOMAIN: &str = "levqor.dev";

/// A core error as the status a client receives, for the request `request_id`.
pub fn status_for(e: Error, request_id: &str) -> Status {
    let code = if e.is_duplicate() {
        Code::AlreadyExists
    } else {
        code_for(e.kind)
    };
    let message = match e.kind {
        ErrorKind::Internal => {
            tracing::error!(request_id, error = %e.message, "internal error");
            "an internal error occurred; quote the request id when reporting it".to_string()
        }
        _ => e.message,
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(e.code, ERROR_DOMAIN, facts(e.details));
    details.set_request_info(request_id, "");
    for v in &e.violations {
        details.add_bad_request_violation(field_path(&v.pointer), v.message.clone());
    }
    if let Some(secs) = e.retry_after_secs {
        details.set_retry_info(Some(Duration::from_secs(secs)));
    }
    Status::with_error_details(tonic::Code::from_i32(code as i32), message, details)
}

/// The facts of an error (`{"needed": 12}`) as `ErrorInfo` metadata: strings as they are,
/// anything else as JSON.
fn facts(details: Option<serde_json::Value>) -> HashMap<String, String> {
    match details {
        Some(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        _ => HashMap::new(),
    }
}

/// A violation's JSON pointer as a protobuf field path: `/events/0/name` → `events[0].name`,
/// `` (the whole request) → ``.
pub fn field_path(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            path.push('[');
            path.push_str(&segment);
            path.push(']');
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment);
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use levqor_core::Violation;

    #[test]
    fn kinds_map_as_the_design_table_says() {
        assert_eq!(code_for(ErrorKind::Invalid) as i32, 3);
        assert_eq!(code_for(ErrorKind::NotFound) as i32, 5);
        assert_eq!(code_for(ErrorKind::Unauthenticated) as i32, 16);
        assert_eq!(code_for(ErrorKind::Forbidden) as i32, 7);
        assert_eq!(code_for(ErrorKind::InsufficientCredits) as i32, 9);
        assert_eq!(code_for(ErrorKind::Conflict) as i32, 10);
        assert_eq!(code_for(ErrorKind::Limit) as i32, 8);
        assert_eq!(code_for(ErrorKind::Unavailable) as i32, 14);
        assert_eq!(code_for(ErrorKind::Internal) as i32, 13);
    }

    #[test]
    fn duplicates_are_already_exists_and_other_conflicts_aborted() {
        let taken = status_for(Error::conflict("email_taken", "taken"), "r");
        assert_eq!(taken.code(), tonic::Code::AlreadyExists);
        let moved = status_for(Error::conflict("invalid_transition", "no"), "r");
        assert_eq!(moved.code(), tonic::Code::Aborted);
        assert_eq!(
            moved.get_error_details().error_info().unwrap().reason,
            "invalid_transition"
        );
    }

    #[test]
    fn violations_become_field_violations_at_field_paths() {
        let e = Error::violations(
            "validation_failed",
            "bad",
            vec![
                Violation::new("/email", "is required"),
                Violation::new("/events/0/name", "must be a string"),
            ],
        );
        let status = status_for(e, "req-1");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("email", "is required"),
                ("events[0].name", "must be a string")
            ]
        );
        assert_eq!(details.request_info().unwrap().request_id, "req-1");
    }

    #[test]
    fn limits_carry_the_wait_and_internal_causes_stay_inside() {
        let limited = status_for(Error::limit("quota_exceeded", "over", 42), "r");
        assert_eq!(limited.code(), tonic::Code::ResourceExhausted);
        let retry = limited
            .get_error_details()
            .retry_info()
            .unwrap()
            .retry_delay;
        assert_eq!(retry, Some(Duration::from_secs(42)));
        let internal = status_for(Error::internal("SELECT * FROM secrets failed"), "r");
        assert_eq!(internal.code(), tonic::Code::Internal);
        assert!(!internal.message().contains("SELECT"));
    }

    #[test]
    fn pointers_become_paths() {
        assert_eq!(field_path(""), "");
        assert_eq!(
            field_path("/workflow/steps/2/type"),
            "workflow.steps[2].type"
        );
        assert_eq!(field_path("/a~1b"), "a/b");
    }
}
