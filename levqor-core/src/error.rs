//! The core's one error type. Every adapter maps [`Error::kind`] to its own status codes in one
//! function (HTTP status, gRPC code, C error code), so the mapping never drifts between routes.

use serde::Serialize;

/// One violated rule in an input document, located by a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer (RFC 6901) into the submitted document; empty for the document itself.
    pub pointer: String,
    /// What is wrong there, in words.
    pub message: String,
}

impl Violation {
    /// A violation at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// The kinds of failure, one per row of the adapters' mapping table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input breaks a rule; nothing was changed.
    Invalid,
    /// No such thing, or it belongs to someone else (the two are indistinguishable on purpose).
    NotFound,
    /// No credential, or one that is unknown or revoked.
    Unauthenticated,
    /// The caller is known but may not do this.
    Forbidden,
    /// Not enough credits.
    InsufficientCredits,
    /// The request conflicts with the current state (a transition, a duplicate).
    Conflict,
    /// A rate or quota limit.
    Limit,
    /// Storage or a dependency is down.
    Unavailable,
    /// A bug: never caused by the caller.
    Internal,
}

/// A core error: a kind, a stable machine code, a human message and, for invalid input, every
/// violation found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// Which row of the mapping table this is.
    pub kind: ErrorKind,
    /// Stable machine code, e.g. `validation_failed`; clients match on it.
    pub code: &'static str,
    /// Human-readable detail; never holds SQL, secrets or stack traces.
    pub message: String,
    /// For [`ErrorKind::Invalid`]: every violation, each with its pointer.
    pub violations: Vec<Violation>,
    /// For [`ErrorKind::Limit`]: seconds until a retry may succeed.
    pub retry_after_secs: Option<u64>,
    /// Facts for the client beyond the message (merged into problem bodies).
    pub details: Option<serde_json::Value>,
}

/// The codes of conflicts that mean "what you are creating exists already" (gRPC answers them
/// with `ALREADY_EXISTS`; every other conflict is `ABORTED`).
pub const DUPLICATE_CODES: &[&str] = &[
    "email_taken",
    "terms_version_exists",
    "subscription_exists",
    "discount_code_exists",
    "already_appealed",
];

impl Error {
    /// Whether this is a conflict with something that exists already ([`DUPLICATE_CODES`]).
    pub fn is_duplicate(&self) -> bool {
        self.kind == ErrorKind::Conflict && DUPLICATE_CODES.contains(&self.code)
    }

    fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            violations: Vec::new(),
            retry_after_secs: None,
            details: None,
        }
    }

    /// Invalid input with a single message and no pointer.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    /// Invalid input with every violation found.
    pub fn violations(
        code: &'static str,
        message: impl Into<String>,
        violations: Vec<Violation>,
    ) -> Self {
        Self {
            violations,
            ..Self::new(ErrorKind::Invalid, code, message)
        }
    }

    /// Not found (or not the caller's).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// Missing, unknown or revoked credentials.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, "unauthenticated", message)
    }

    /// Known caller, not allowed.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code, message)
    }

    /// Not enough credits for what was asked.
    pub fn insufficient_credits(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::InsufficientCredits,
            "insufficient_credits",
            message,
        )
    }

    /// A state conflict or a duplicate.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    /// A rate or quota limit; `retry_after_secs` is when to try again.
    pub fn limit(code: &'static str, message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(ErrorKind::Limit, code, message)
        }
    }

    /// Storage or a dependency is down. The cause is logged by the caller, not shown.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, "unavailable", message)
    }

    /// The same error with another machine code.
    pub fn with_code(self, code: &'static str) -> Self {
        Self { code, ..self }
    }

    /// The same error with facts for the client (e.g. a screening result), added to the
    /// problem body by the adapters.
    pub fn with_details(self, details: serde_json::Value) -> Self {
        Self {
            details: Some(details),
            ..self
        }
    }

    /// A bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }
}

/// `value` as a JSON document; failing to serialize is a bug.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::internal(e.to_string()))
}

/// Result with the core's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
