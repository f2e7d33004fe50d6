//! The one place domain errors become gRPC status codes.

use tonic::Status;

use crate::operations::OperationError;
use crate::tokens::TokenError;

impl From<OperationError> for Status {
    fn from(e: OperationError) -> Status {
        let message = e.to_string();
        match e {
            OperationError::NotFound(_) => Status::not_found(message),
            OperationError::Invalid(_) => Status::invalid_argument(message),
            OperationError::FailedPrecondition(_) => Status::failed_precondition(message),
            OperationError::Unavailable(_) => Status::unavailable(message),
            OperationError::PermissionDenied(_) => Status::permission_denied(message),
            OperationError::Store(_) => Status::internal(message),
        }
    }
}

impl From<TokenError> for Status {
    fn from(e: TokenError) -> Status {
        let message = e.to_string();
        match e {
            TokenError::Unknown | TokenError::Used(_) | TokenError::Expired => {
                Status::unauthenticated(message)
            }
            TokenError::WrongInstance(_) => Status::permission_denied(message),
            TokenError::NotYetBound => Status::unavailable(message),
            TokenError::BadCsr(_) => Status::invalid_argument(message),
            TokenError::Store(_) => Status::internal(message),
        }
    }
}
