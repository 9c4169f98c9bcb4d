//! Levqor's C ABI: the embeddable core for programs in any language that can call C.
//!
//! - **Handles.** `levqor_open` returns an opaque `levqor_t`; `levqor_close` ends it. A handle
//!   is thread-safe, and a closed or unknown handle is an error (`closed_handle`), never a use
//!   of freed memory.
//! - **Status.** Every function returns a `levqor_status`; on an error, `levqor_last_error`
//!   and `levqor_last_error_code` on the same thread say what and why.
//! - **Ownership.** Strings passed in are borrowed for the call (NUL-terminated UTF-8).
//!   Strings written to `char **out` pointers belong to the caller, who frees each once with
//!   `levqor_string_free` (NULL is ignored). An out-pointer that may be NULL says so; a
//!   non-NULL one holds NULL (or 0) after an error.
//! - **No panic crosses the boundary**: each entry point catches them and answers
//!   `LEVQOR_ERR_INTERNAL`.
//!
//! `include/levqor.h` is generated from this crate by cbindgen (`tests/header.rs` fails when
//! it is stale; `LEVQOR_BLESS=1 cargo test -p levqor-ffi --test header` rewrites it).

mod api;
mod handle;
mod io;
mod status;
mod validate;

pub use api::*;
pub use handle::levqor_t;
pub use status::{levqor_last_error, levqor_last_error_code, levqor_status, status_for};
pub use validate::levqor_workflow_validate;

use std::ffi::{CString, c_char};

/// Frees a string that Levqor wrote to an out-pointer. NULL is ignored. Free each string once:
/// a second free of the same string cannot be detected (as with `free`).
///
/// # Safety
/// `s` must be NULL or a string Levqor returned, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the caller promises `s` came from `CString::into_raw` here and is freed once.
        drop(unsafe { CString::from_raw(s) });
    }
}
