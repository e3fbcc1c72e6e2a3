//! Manifest errors that name the field at fault and the fix.

use std::fmt;

/// One thing wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field (`capabilities.network[0].host`), or a position for syntax
    /// errors; empty when the whole file is at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    pub fn new(
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Problem {
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{} (fix: {})", self.message, self.fix)
        } else {
            write!(f, "`{}` {} (fix: {})", self.field, self.message, self.fix)
        }
    }
}

/// A manifest that could not be accepted, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The file (or package entry) the manifest came from.
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl ManifestError {
    pub fn single(origin: &str, problem: Problem) -> Self {
        ManifestError {
            origin: origin.to_string(),
            problems: vec![problem],
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid plugin manifest {}", self.origin)?;
        if self.problems.len() == 1 {
            write!(f, ": {}", self.problems[0])
        } else {
            for p in &self.problems {
                write!(f, "\n  - {p}")?;
            }
            Ok(())
        }
    }
}
