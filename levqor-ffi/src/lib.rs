//! Levqor's C ABI. For now it exposes workflow validation (the same schema and rules as the
//! REST API) so that programs in other languages can check workflows before submitting them;
//! the full handle-based API is the subject of its own issue.
//!
//! Conventions: every function returns a [`LevqorStatus`]; results go through out-pointers;
//! strings returned to C are NUL-terminated UTF-8 owned by the caller and freed with
//! [`levqor_string_free`] (which accepts NULL). No panic crosses the boundary.

use levqor_core::ErrorKind;
use levqor_core::jobs::workflow::WorkflowSchema;
use std::ffi::{CString, c_char};
use std::panic::catch_unwind;
use std::sync::OnceLock;

/// Status codes, one per row of DESIGN.md's error table.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevqorStatus {
    /// Success.
    LevqorOk = 0,
    /// Invalid input; the report says why.
    LevqorErrInvalid = 1,
    /// Not found.
    LevqorErrNotFound = 2,
    /// Unauthenticated.
    LevqorErrAuth = 3,
    /// Forbidden.
    LevqorErrForbidden = 4,
    /// Insufficient credits.
    LevqorErrPayment = 5,
    /// Conflict.
    LevqorErrConflict = 6,
    /// Rate or quota limit.
    LevqorErrLimit = 7,
    /// Storage or dependency down.
    LevqorErrUnavailable = 8,
    /// A bug, or a NULL where a pointer was required.
    LevqorErrInternal = 9,
}

/// The one place core error kinds become C status codes.
pub fn status_for(kind: ErrorKind) -> LevqorStatus {
    match kind {
        ErrorKind::Invalid => LevqorStatus::LevqorErrInvalid,
        ErrorKind::NotFound => LevqorStatus::LevqorErrNotFound,
        ErrorKind::Unauthenticated => LevqorStatus::LevqorErrAuth,
        ErrorKind::Forbidden => LevqorStatus::LevqorErrForbidden,
        ErrorKind::InsufficientCredits => LevqorStatus::LevqorErrPayment,
        ErrorKind::Conflict => LevqorStatus::LevqorErrConflict,
        ErrorKind::Limit => LevqorStatus::LevqorErrLimit,
        ErrorKind::Unavailable => LevqorStatus::LevqorErrUnavailable,
        ErrorKind::Internal => LevqorStatus::LevqorErrInternal,
    }
}

fn schema() -> &'static WorkflowSchema {
    static SCHEMA: OnceLock<WorkflowSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| WorkflowSchema::new(&[]))
}

/// Validates the workflow in `json` (`len` bytes of UTF-8, not necessarily NUL-terminated).
/// Returns `LevqorOk` when it is valid, `LevqorErrInvalid` when it is not; either way, when
/// `out_report` is not NULL it receives a JSON report `{"valid", "errors": [{"pointer",
/// "message"}]}` that the caller frees with [`levqor_string_free`].
///
/// # Safety
/// `json` must point to `len` readable bytes; `out_report` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_workflow_validate(
    json: *const u8,
    len: usize,
    out_report: *mut *mut c_char,
) -> LevqorStatus {
    if json.is_null() {
        return LevqorStatus::LevqorErrInternal;
    }
    // SAFETY: the caller promises `len` readable bytes at `json`.
    let bytes = unsafe { std::slice::from_raw_parts(json, len) };
    let outcome = catch_unwind(|| {
        let (status, errors) = match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(e) => (
                LevqorStatus::LevqorErrInvalid,
                vec![levqor_core::Violation::new(
                    "",
                    format!("not valid JSON: {e}"),
                )],
            ),
            Ok(doc) => match schema().validate(&doc) {
                Ok(_) => (LevqorStatus::LevqorOk, Vec::new()),
                Err(e) => (status_for(e.kind), e.violations),
            },
        };
        let report =
            serde_json::json!({"valid": status == LevqorStatus::LevqorOk, "errors": errors})
                .to_string();
        (status, CString::new(report).expect("JSON has no NUL"))
    });
    match outcome {
        Ok((status, report)) => {
            if !out_report.is_null() {
                // SAFETY: the caller promises `out_report` is writable when not NULL.
                unsafe { *out_report = report.into_raw() };
            }
            status
        }
        Err(_) => LevqorStatus::LevqorErrInternal,
    }
}

/// Frees a string that Levqor returned. NULL is ignored; each string is freed at most once.
///
/// # Safety
/// `s` must be NULL or a pointer returned by Levqor and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the caller promises `s` came from `CString::into_raw` here and is freed once.
        drop(unsafe { CString::from_raw(s) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn validate(doc: &str) -> (LevqorStatus, serde_json::Value) {
        let mut report: *mut c_char = std::ptr::null_mut();
        let status = unsafe { levqor_workflow_validate(doc.as_ptr(), doc.len(), &mut report) };
        let json = unsafe { CStr::from_ptr(report) }
            .to_str()
            .unwrap()
            .to_string();
        unsafe { levqor_string_free(report) };
        (status, serde_json::from_str(&json).unwrap())
    }

    #[test]
    fn valid_and_invalid_workflows_are_reported() {
        let (s, r) = validate(r#"{"name":"n","steps":[{"id":"a","type":"log","message":"x"}]}"#);
        assert_eq!(
            (s, r["valid"].as_bool()),
            (LevqorStatus::LevqorOk, Some(true))
        );
        let (s, r) = validate(r#"{"name":"n","steps":[{"id":"a","type":"nope"}]}"#);
        assert_eq!(s, LevqorStatus::LevqorErrInvalid);
        assert_eq!(r["errors"][0]["pointer"], "/steps/0/type");
        let (s, _) = validate("{not json");
        assert_eq!(s, LevqorStatus::LevqorErrInvalid);
        assert_eq!(
            unsafe { levqor_workflow_validate(std::ptr::null(), 0, std::ptr::null_mut()) },
            LevqorStatus::LevqorErrInternal
        );
        unsafe { levqor_string_free(std::ptr::null_mut()) };
    }
}
