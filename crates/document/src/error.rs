//! Why a stage (or an engine under it) failed: bad input fails the job at once, anything
//! else is retried. The message is what users see on the job and the document.

use lectern_queue::engine::JobError;
use lectern_queue::storage::StoreError;

/// Why a stage failed. The message is what users see on the job and the document.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The input itself is unusable (corrupt, encrypted, empty, wrong type): retrying
    /// cannot help, so the job fails at once.
    #[error("{0}")]
    BadInput(String),
    /// Anything else (I/O, database, a model failing to load): retried with backoff.
    #[error("{0}")]
    Transient(String),
}

impl StageError {
    pub fn transient(context: &str, err: impl std::fmt::Display) -> Self {
        StageError::Transient(format!("{context}: {err}"))
    }
}

impl From<StageError> for JobError {
    fn from(e: StageError) -> Self {
        match e {
            StageError::BadInput(reason) => JobError::Fail(reason),
            StageError::Transient(reason) => JobError::Retry(reason),
        }
    }
}

impl From<StoreError> for StageError {
    fn from(e: StoreError) -> Self {
        StageError::Transient(e.to_string())
    }
}

impl From<std::io::Error> for StageError {
    fn from(e: std::io::Error) -> Self {
        StageError::Transient(format!("I/O error: {e}"))
    }
}

impl From<tokio::task::JoinError> for StageError {
    fn from(e: tokio::task::JoinError) -> Self {
        StageError::Transient(format!("stage task panicked or was cancelled: {e}"))
    }
}
