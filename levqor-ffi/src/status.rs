//! Status codes, the thread's last error, and the guard every entry point runs its body in.

use levqor_core::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a call did: `LEVQOR_OK`, or the kind of error (the rows of the error table that the
/// REST and gRPC adapters share). On an error, `levqor_last_error` and
/// `levqor_last_error_code` on the same thread say more.
#[repr(u32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum levqor_status {
    /// Success.
    LEVQOR_OK = 0,
    /// Invalid input: a NULL where a value is required, text that is not UTF-8, malformed
    /// JSON, a closed handle, or a value the core refuses.
    LEVQOR_ERR_INVALID = 1,
    /// Not found, or not the caller's.
    LEVQOR_ERR_NOT_FOUND = 2,
    /// The key is unknown or revoked.
    LEVQOR_ERR_AUTH = 3,
    /// The key may not do this (scope, terms, objection, suspended account).
    LEVQOR_ERR_FORBIDDEN = 4,
    /// Not enough credits.
    LEVQOR_ERR_PAYMENT = 5,
    /// A state transition that is not allowed, or a duplicate.
    LEVQOR_ERR_CONFLICT = 6,
    /// A rate or quota limit.
    LEVQOR_ERR_LIMIT = 7,
    /// The database or a dependency is down.
    LEVQOR_ERR_UNAVAILABLE = 8,
    /// A bug inside Levqor (a caught panic among them); nothing about it is the caller's fault.
    LEVQOR_ERR_INTERNAL = 9,
}

use levqor_status::*;

/// The one place core error kinds become C status codes.
pub fn status_for(kind: ErrorKind) -> levqor_status {
    match kind {
        ErrorKind::Invalid => LEVQOR_ERR_INVALID,
        ErrorKind::NotFound => LEVQOR_ERR_NOT_FOUND,
        ErrorKind::Unauthenticated => LEVQOR_ERR_AUTH,
        ErrorKind::Forbidden => LEVQOR_ERR_FORBIDDEN,
        ErrorKind::InsufficientCredits => LEVQOR_ERR_PAYMENT,
        ErrorKind::Conflict => LEVQOR_ERR_CONFLICT,
        ErrorKind::Limit => LEVQOR_ERR_LIMIT,
        ErrorKind::Unavailable => LEVQOR_ERR_UNAVAILABLE,
        ErrorKind::Internal => LEVQOR_ERR_INTERNAL,
    }
}

struct LastError {
    message: CString,
    code: CString,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError {
        message: CString::default(),
        code: CString::default(),
    });
}

/// `s` as a C string; a NUL inside it (which JSON and our messages never hold) is dropped.
pub(crate) fn c_string(s: impl Into<String>) -> CString {
    let s: String = s.into();
    CString::new(s).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|&b| b != 0);
        CString::new(bytes).expect("the NULs are gone")
    })
}

/// The message of an error: the core's message, then each violation (`/pointer: message`).
fn describe(e: &Error) -> String {
    let mut message = e.message.clone();
    for v in &e.violations {
        message.push_str(&format!("; {}: {}", v.pointer, v.message));
    }
    message
}

fn remember(message: String, code: &str) {
    LAST.with(|last| {
        *last.borrow_mut() = LastError {
            message: c_string(message),
            code: c_string(code.to_string()),
        }
    });
}

fn forget() {
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if !last.code.is_empty() {
            *last = LastError {
                message: CString::default(),
                code: CString::default(),
            };
        }
    });
}

/// Runs an entry point's body: clears the thread's last error, catches any panic (reported as
/// `LEVQOR_ERR_INTERNAL`, code `panic`) and turns an error into its status, remembering it.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Error>) -> levqor_status {
    forget();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => LEVQOR_OK,
        Ok(Err(e)) => {
            remember(describe(&e), e.code);
            status_for(e.kind)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            remember(format!("a bug inside Levqor: {what}"), "panic");
            LEVQOR_ERR_INTERNAL
        }
    }
}

/// The message of the last error on this thread, or `""` when the last call succeeded. The
/// string belongs to Levqor and stays valid until the next Levqor call on this thread; do not
/// free it.
#[unsafe(no_mangle)]
pub extern "C" fn levqor_last_error() -> *const c_char {
    LAST.with(|last| last.borrow().message.as_ptr())
}

/// The stable code of the last error on this thread (`validation_failed`, `not_found`,
/// `null_argument`, `closed_handle`, ...: the REST API's codes, plus the C ABI's own), or `""`
/// when the last call succeeded. Owned and valid as `levqor_last_error`'s.
#[unsafe(no_mangle)]
pub extern "C" fn levqor_last_error_code() -> *const c_char {
    LAST.with(|last| last.borrow().code.as_ptr())
}
