//! Public records: which production cluster a project's public DNS name points at.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// The stored state of a project's public record; the previous target is kept
/// so flipping back is one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordState {
    pub project: String,
    pub name: String,
    pub environment: String,
    pub previous_environment: Option<String>,
    pub updated_at: Millis,
    pub updated_by: String,
}
