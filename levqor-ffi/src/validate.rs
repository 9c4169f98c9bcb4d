//! Workflow validation without a handle: the same schema and rules as the REST API, so a
//! program can check a workflow before it opens anything.

use crate::io::{OutString, null};
use crate::status::{guard, levqor_status};
use levqor_core::jobs::workflow::WorkflowSchema;
use levqor_core::{Error, Violation};
use serde_json::{Value, json};
use std::ffi::c_char;
use std::sync::OnceLock;

fn schema() -> &'static WorkflowSchema {
    static SCHEMA: OnceLock<WorkflowSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| WorkflowSchema::new(&[]))
}

/// Validates the workflow in `json` (`len` bytes of UTF-8, not necessarily NUL-terminated).
/// Returns `LEVQOR_OK` when it is valid and `LEVQOR_ERR_INVALID` when it is not
/// (`validation_failed`, or `malformed_json`); either way, when `out_report` is not NULL it
/// receives a JSON report `{"valid", "errors": [{"pointer", "message"}]}` to free with
/// `levqor_string_free`.
///
/// # Safety
/// `json` must point to `len` readable bytes; `out_report` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_workflow_validate(
    json: *const u8,
    len: usize,
    out_report: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { OutString::new(out_report) };
        if json.is_null() {
            return Err(null("json"));
        }
        // SAFETY: the caller promises `len` readable bytes at `json`.
        let bytes = unsafe { std::slice::from_raw_parts(json, len) };
        let verdict = match serde_json::from_slice::<Value>(bytes) {
            Err(e) => Err(Error::violations(
                "malformed_json",
                "the workflow is not JSON",
                vec![Violation::new("", format!("not valid JSON: {e}"))],
            )),
            Ok(doc) => schema().validate(&doc).map(|_| ()),
        };
        let errors = verdict
            .as_ref()
            .err()
            .map(|e| e.violations.clone())
            .unwrap_or_default();
        out.set_json(&json!({"valid": verdict.is_ok(), "errors": errors}))?;
        verdict
    })
}
