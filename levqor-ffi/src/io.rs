//! Reading a caller's arguments and writing its out-pointers, each refusal an `Invalid` error
//! with a stable code: `null_argument`, `invalid_utf8`, `malformed_json`, `bad_id`.

use crate::status::c_string;
use levqor_core::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use std::ffi::{CStr, c_char};
use uuid::Uuid;

/// A required NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn text<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: the caller promises a NUL-terminated string at `p`.
    let bytes = unsafe { CStr::from_ptr(p) };
    bytes.to_str().map_err(|e| {
        Error::invalid(
            "invalid_utf8",
            format!(
                "`{name}` is not UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// A required argument holding a JSON document.
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn json(p: *const c_char, name: &str) -> Result<Value> {
    // SAFETY: forwarded.
    let raw = unsafe { text(p, name) }?;
    serde_json::from_str(raw)
        .map_err(|e| Error::invalid("malformed_json", format!("`{name}` is not JSON: {e}")))
}

/// A required argument holding an id.
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn id(p: *const c_char, name: &str) -> Result<Uuid> {
    // SAFETY: forwarded.
    let raw = unsafe { text(p, name) }?;
    Uuid::parse_str(raw).map_err(|_| Error::invalid("bad_id", format!("`{name}` is not an id")))
}

pub(crate) fn null(name: &str) -> Error {
    Error::invalid("null_argument", format!("`{name}` must not be NULL"))
}

/// An optional out-pointer: NULL when the caller does not want that value. A non-NULL one is
/// cleared at once, so that it holds NULL (or zero) after an error.
pub(crate) struct Out<T>(*mut T);

/// What an out-pointer holds after an error.
pub(crate) trait Cleared {
    fn cleared() -> Self;
}

impl Cleared for *mut c_char {
    fn cleared() -> Self {
        std::ptr::null_mut()
    }
}

impl Cleared for i64 {
    fn cleared() -> Self {
        0
    }
}

impl Cleared for u32 {
    fn cleared() -> Self {
        0
    }
}

impl<T: Cleared> Out<T> {
    /// # Safety
    /// `p` must be NULL or valid for writes of a `T`.
    pub(crate) unsafe fn new(p: *mut T) -> Self {
        if !p.is_null() {
            // SAFETY: the caller promises `p` is writable.
            unsafe { p.write(T::cleared()) };
        }
        Out(p)
    }

    /// A required out-pointer.
    ///
    /// # Safety
    /// As [`Out::new`].
    pub(crate) unsafe fn required(p: *mut T, name: &str) -> Result<Self> {
        if p.is_null() {
            return Err(null(name));
        }
        // SAFETY: forwarded.
        Ok(unsafe { Out::new(p) })
    }

    pub(crate) fn wanted(&self) -> bool {
        !self.0.is_null()
    }

    pub(crate) fn set(self, value: T) {
        if !self.0.is_null() {
            // SAFETY: checked writable at construction.
            unsafe { self.0.write(value) };
        }
    }
}

/// An out-pointer for a string the caller frees with `levqor_string_free`.
pub(crate) type OutString = Out<*mut c_char>;

impl OutString {
    pub(crate) fn set_string(self, s: impl Into<String>) {
        if self.wanted() {
            self.set(c_string(s).into_raw());
        }
    }

    /// A value as JSON (serialized only when the caller wants it).
    pub(crate) fn set_json<T: Serialize>(self, value: &T) -> Result<()> {
        if self.wanted() {
            let json = serde_json::to_string(value)
                .map_err(|e| Error::internal(format!("cannot serialize a result: {e}")))?;
            self.set_string(json);
        }
        Ok(())
    }
}
