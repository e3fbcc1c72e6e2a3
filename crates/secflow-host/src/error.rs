//! Typed errors of host operations. A front end maps the kind to its own vocabulary (an
//! exit code, an HTTP status) and the remedy to its own words (a CLI command, an API call);
//! messages name what is wrong without naming any front end's flags.

use std::path::PathBuf;

/// What kind of failure, for exit codes and HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The request is wrong: bad input, a missing file, a name that does not exist.
    Invalid,
    /// The plugin (or other named thing) is not there.
    NotFound,
    /// Refused: verification, trust, policy, approval, quarantine, or a conflict with what
    /// is installed.
    Refused,
    /// A plugin failed: a trap, a limit, a sandbox violation.
    PluginFailed,
    /// The host's own state could not be read or written (a database, a file, the audit
    /// log).
    Internal,
}

impl ErrorKind {
    /// The exit code of the CLI contract: 2 usage or configuration, 3 refused, 4 plugin
    /// failed.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Invalid | ErrorKind::NotFound | ErrorKind::Internal => 2,
            ErrorKind::Refused => 3,
            ErrorKind::PluginFailed => 4,
        }
    }
}

/// What the caller can do about an error; each front end says it in its own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Approve the asked capabilities (or name the ones to grant): nobody was asked.
    ApproveCapabilities,
    /// Approve the capabilities a held upgrade asks for.
    ApproveOnEnable,
    /// Review a grant waiting for approval, then enable the plugin.
    ReviewHeldGrant { id: String },
    /// Turn the plugin on.
    Enable { id: String },
    /// Lift the quarantine.
    Release { id: String },
    /// See what the policies say, or edit them.
    ExplainPolicy { policy_dir: PathBuf },
    /// Install the plugin again.
    Reinstall,
    /// Build the plugin's component.
    Build { dir: PathBuf },
    /// Create a manifest.
    CreateManifest,
    /// Give the run an input (a file, stdin, a request body).
    GiveInput,
}

/// A failed host operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HostError {
    pub kind: ErrorKind,
    pub message: String,
    pub remedy: Option<Remedy>,
}

impl HostError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> HostError {
        HostError {
            kind,
            message: message.into(),
            remedy: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> HostError {
        HostError::new(ErrorKind::Invalid, message)
    }

    pub fn not_found(message: impl Into<String>) -> HostError {
        HostError::new(ErrorKind::NotFound, message)
    }

    pub fn refused(message: impl Into<String>) -> HostError {
        HostError::new(ErrorKind::Refused, message)
    }

    pub fn internal(message: impl Into<String>) -> HostError {
        HostError::new(ErrorKind::Internal, message)
    }

    pub fn plugin_failed(message: impl Into<String>) -> HostError {
        HostError::new(ErrorKind::PluginFailed, message)
    }

    pub fn with_remedy(mut self, remedy: Remedy) -> HostError {
        self.remedy = Some(remedy);
        self
    }

    /// The same error with `context: ` before its message.
    pub fn context(mut self, context: impl std::fmt::Display) -> HostError {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl From<secflow_registry::RegistryError> for HostError {
    /// A conflict with what is installed or a broken dependency is a refusal; a missing
    /// plugin is not found; the database or the disk failing is internal.
    fn from(e: secflow_registry::RegistryError) -> HostError {
        use secflow_registry::RegistryError as R;
        let kind = match &e {
            R::NotInstalled(_) => ErrorKind::NotFound,
            R::Database(_) | R::Io(_) => ErrorKind::Internal,
            _ => ErrorKind::Refused,
        };
        HostError::new(kind, e.to_string())
    }
}

impl From<secflow_runtime::LoadError> for HostError {
    /// A component the sandbox will not load: refused when it asks for what it may not
    /// have, invalid otherwise.
    fn from(e: secflow_runtime::LoadError) -> HostError {
        let kind = if e.is_refusal() {
            ErrorKind::Refused
        } else {
            ErrorKind::Invalid
        };
        HostError::new(kind, e.to_string())
    }
}

impl From<secflow_audit::AuditError> for HostError {
    fn from(e: secflow_audit::AuditError) -> HostError {
        HostError::internal(e.to_string())
    }
}

impl From<secflow_trust::TrustError> for HostError {
    fn from(e: secflow_trust::TrustError) -> HostError {
        HostError::invalid(e.to_string())
    }
}

pub type Result<T, E = HostError> = std::result::Result<T, E>;
