//! What the module registry can refuse or fail with. A leaf: the crate's error type wraps it,
//! so it names nothing of the registry's.

use std::path::PathBuf;

/// What went wrong in the registry; each kind maps to one HTTP status in `sluice serve`.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The upload or request is malformed (bad name, version, not a component, wrong world).
    #[error("{0}")]
    Invalid(String),
    /// The upload is over the size cap.
    #[error("the module is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The upload's size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// No such module, version or digest.
    #[error("{0}")]
    NotFound(String),
    /// The tag exists with other content, or the module is in use.
    #[error("{0}")]
    Conflict(String),
    /// Reading or writing the registry directory failed.
    #[error("registry {}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error (in the message, not also the `source()`, so it is printed once).
        cause: std::io::Error,
    },
}
