//! Load errors and validation problems, each naming the file (and line) at fault.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a policy or schema file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyProblem {
    /// The file at fault: a path, or `<built-in>/...` for the embedded defaults.
    pub file: String,
    /// 1-based line in `file`, when known.
    pub line: Option<usize>,
    /// The `@id` of the policy at fault, when the problem is in one policy.
    pub policy: Option<String>,
    /// What is wrong, with Cedar's hint when it has one.
    pub message: String,
    /// A warning (e.g. a policy that can never apply, confusable Unicode) rather than an
    /// error. Warnings are reported by [`crate::PolicyEngine::check`] but do not make the
    /// engine fail closed.
    pub warning: bool,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if self.warning {
            f.write_str("warning: ")?;
        }
        if let Some(id) = &self.policy {
            write!(f, "policy `{id}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a policy directory could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than [`crate::MAX_FILE_BYTES`]; policies are small, so this is a
    /// mistake or an attack, and reading it would only waste memory.
    #[error("{}: {size} bytes, more than the {limit}-byte limit for a policy or schema file", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// More than [`crate::MAX_POLICY_FILES`] `.cedar` files in the directory.
    #[error("{}: more than {limit} .cedar files; merge them", dir.display())]
    TooManyFiles { dir: PathBuf, limit: usize },
    /// Syntax errors, an invalid schema, duplicate or missing policy ids, templates, or a
    /// schema that does not describe the facts SecFlow supplies.
    #[error("{}", Problems(.0))]
    Invalid(Vec<PolicyProblem>),
    /// [`crate::PolicyEngine::install_defaults`] refuses to overwrite an existing file.
    #[error("{}: already exists; not overwriting it (move it away to reinstall the defaults)", path.display())]
    Exists { path: PathBuf },
}

struct Problems<'a>(&'a [PolicyProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems in the policy files:", many.len())?;
                for p in many {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}
