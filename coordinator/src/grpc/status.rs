//! The one place errors become gRPC statuses: by the `Code` each error says it
//! is. Handlers use `?` on the errors below, or `status::of` on any other.

use tonic::Status;

use crate::error::{Code, Coded};
use crate::operations::OperationError;
use crate::store::StoreError;
use crate::tokens::TokenError;

/// The status a caller gets for `e`, with its message.
pub fn of(e: &(impl Coded + ?Sized)) -> Status {
    let message = e.to_string();
    match e.code() {
        Code::NotFound => Status::not_found(message),
        Code::Invalid => Status::invalid_argument(message),
        Code::FailedPrecondition => Status::failed_precondition(message),
        Code::PermissionDenied => Status::permission_denied(message),
        Code::Unauthenticated => Status::unauthenticated(message),
        Code::Unavailable => Status::unavailable(message),
        Code::Internal => Status::internal(message),
    }
}

/// An action the audit log could not record is not acknowledged: what it
/// stored stays, and the caller is told.
pub fn audit_unwritable(e: &StoreError) -> Status {
    Status::internal(format!(
        "the audit log cannot be written ({e}): the action was not acknowledged"
    ))
}

impl From<OperationError> for Status {
    fn from(e: OperationError) -> Status {
        of(&e)
    }
}

impl From<TokenError> for Status {
    fn from(e: TokenError) -> Status {
        of(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_status() {
        let cases = [
            (OperationError::NotFound("x".into()), tonic::Code::NotFound),
            (
                OperationError::Invalid("x".into()),
                tonic::Code::InvalidArgument,
            ),
            (
                OperationError::PermissionDenied("x".into()),
                tonic::Code::PermissionDenied,
            ),
            (
                OperationError::Store(StoreError::Io("disk full".into())),
                tonic::Code::Internal,
            ),
            (
                OperationError::Store(StoreError::Fenced {
                    epoch: 1,
                    current: 2,
                }),
                tonic::Code::Unavailable,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
        assert_eq!(
            Status::from(TokenError::Expired).code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            Status::from(TokenError::NotYetBound).code(),
            tonic::Code::Unavailable
        );
    }
}
