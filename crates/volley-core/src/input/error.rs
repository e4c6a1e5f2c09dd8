use std::fmt;

/// A record that could not be read; the text names the source and the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A record was refused.
    Record {
        /// The source's name.
        source_name: String,
        /// The 1-based line.
        line: u64,
        /// The 1-based column, when known.
        column: Option<u64>,
        /// Why.
        reason: String,
    },
    /// Reading failed.
    Io {
        /// The source's name.
        source_name: String,
        /// The error.
        #[source]
        error: std::io::Error,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Record {
                source_name,
                line,
                column: Some(col),
                reason,
            } => {
                write!(f, "{source_name}:{line}:{col}: {reason}")
            }
            InputError::Record {
                source_name,
                line,
                column: None,
                reason,
            } => {
                write!(f, "{source_name}:{line}: {reason}")
            }
            InputError::Io { source_name, error } => {
                write!(f, "{source_name}: read error: {error}")
            }
        }
    }
}

impl InputError {
    /// The line, for record errors.
    pub fn line(&self) -> Option<u64> {
        match self {
            InputError::Record { line, .. } => Some(*line),
            InputError::Io { .. } => None,
        }
    }

    pub(crate) fn record(
        source_name: &str,
        line: u64,
        column: Option<u64>,
        reason: impl Into<String>,
    ) -> Self {
        InputError::Record {
            source_name: source_name.to_string(),
            line,
            column,
            reason: reason.into(),
        }
    }
}
