//! The library's one error type. Variants say what went wrong and how a caller can recover:
//! a bad input file is skipped (the batch goes on), a bad parameter is a usage error,
//! an I/O error on an output is fatal for that track.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout stemkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in stemkit.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is out of range: `what` names it, the message says what was expected and what arrived.
    InvalidParameter {
        /// The parameter's name (as the CLI spells it, e.g. `--n-fft`).
        what: &'static str,
        /// What was expected and what arrived.
        message: String,
    },
    /// An input file cannot be used as audio; skip it and go on with the batch.
    BadInput {
        /// The file.
        path: PathBuf,
        /// Why, in one line.
        reason: String,
    },
    /// The input's codec or container is recognised but not supported.
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file (input or output).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An output would overwrite an input, or escape the output folder.
    UnsafeOutput {
        /// The refused output path.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The GPU path failed mid-run (device lost, out of memory, a driver error).
    Gpu(String),
    /// `--device gpu` (or `--adapter`) asked for a GPU that cannot be opened: a usage error.
    NoGpu(String),
    /// The separation produced something it must not (non-finite samples): a bug; the track
    /// fails alone and nothing of it is delivered.
    Internal {
        /// The input file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// A bad-input error for `path`.
    pub fn bad_input(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::BadInput {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An invalid-parameter error.
    pub fn param(what: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidParameter {
            what,
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True for errors caused by the user's arguments (exit code 2 in the CLI).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::InvalidParameter { .. } | Error::NoGpu(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidParameter { what, message } => write!(f, "invalid {what}: {message}"),
            Error::BadInput { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Unsupported { path, reason } => {
                write!(f, "{}: unsupported: {reason}", path.display())
            }
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::UnsafeOutput { path, reason } => {
                write!(f, "{}: refused output: {reason}", path.display())
            }
            Error::Gpu(message) => write!(f, "GPU: {message}"),
            Error::NoGpu(message) => write!(f, "no usable GPU: {message}"),
            Error::Internal { path, reason } => {
                write!(f, "{}: internal error: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
