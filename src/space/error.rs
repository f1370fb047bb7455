//! What can be wrong with an architecture given by the user.

use std::fmt;

/// An architecture index or string that names no cell; the message quotes the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchError {
    /// An index outside `0..=15624` (`input` is the text as given, which may be negative or huge).
    IndexOutOfRange { input: String },
    /// Text that is not a valid arch string; `reason` says what is wrong with it.
    Malformed { input: String, reason: String },
}

impl fmt::Display for ArchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchError::IndexOutOfRange { input } => {
                write!(f, "architecture index {input} is out of range: valid indices are 0..={}", super::NUM_ARCHS - 1)
            }
            ArchError::Malformed { input, reason } => write!(f, "invalid architecture \"{input}\": {reason}"),
        }
    }
}

impl std::error::Error for ArchError {}
