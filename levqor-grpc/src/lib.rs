//! Levqor's gRPC adapter. This crate holds the mapping of core error kinds to gRPC status
//! codes (DESIGN.md's table) that the tonic service will use; the service itself (protos under
//! `proto/levqor/v1/`, health and reflection) is the subject of its own issue.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use levqor_core::ErrorKind;

/// gRPC canonical status codes used by Levqor (numeric values as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    /// 3
    InvalidArgument = 3,
    /// 5
    NotFound = 5,
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
