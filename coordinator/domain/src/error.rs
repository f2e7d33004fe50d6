//! What kind of failure an error is, for whoever has to react to it: each
//! module's error enum says its `Code`, and the gRPC layer turns a code into a
//! status in one place (`grpc::status`), the CLI into an exit code later.

/// The kinds of failure a caller can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Something named does not exist.
    NotFound,
    /// The request itself is wrong; retrying it unchanged will not help.
    Invalid,
    /// The request is fine but the state does not allow it now.
    FailedPrecondition,
    /// The caller may not do this.
    PermissionDenied,
    /// The caller did not prove who it is (a join token, say).
    Unauthenticated,
    /// Something this depends on is away or busy; retrying may help.
    Unavailable,
    /// Slipway itself failed (its store, say): not the caller's doing.
    Internal,
}

/// An error that says what kind of failure it is.
pub trait Coded: std::error::Error {
    fn code(&self) -> Code;
}

impl Coded for crate::cloud::CloudError {
    fn code(&self) -> Code {
        match self {
            crate::cloud::CloudError::NotFound(_) => Code::NotFound,
            crate::cloud::CloudError::Invalid(_) => Code::FailedPrecondition,
            crate::cloud::CloudError::Unavailable(_) => Code::Unavailable,
        }
    }
}

impl Coded for crate::store::StoreError {
    fn code(&self) -> Code {
        match self {
            // Another coordinator acts now: the caller should go there.
            crate::store::StoreError::Fenced { .. } => Code::Unavailable,
            _ => Code::Internal,
        }
    }
}
