//! Exit codes of the CLI contract, and how errors map to them.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Findings = 1,
    Usage = 2,
    Refused = 3,
    PluginFailed = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error that carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    pub code: Exit,
    pub message: String,
}

pub fn fail(code: Exit, message: impl Into<String>) -> anyhow::Error {
    CodedError {
        code,
        message: message.into(),
    }
    .into()
}

/// Errors without an explicit code are usage or configuration errors.
pub fn code_of(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|e| e.downcast_ref::<CodedError>().map(|c| c.code))
        .unwrap_or(Exit::Usage)
}

/// A host error as the CLI reports it: the exit code of its kind, and its remedy in the
/// CLI's words (the commands and flags to use).
pub fn host(err: secflow_host::HostError) -> anyhow::Error {
    use secflow_host::{ErrorKind, Remedy};
    let code = match err.kind {
        ErrorKind::Invalid | ErrorKind::NotFound | ErrorKind::Internal => Exit::Usage,
        ErrorKind::Refused => Exit::Refused,
        ErrorKind::PluginFailed => Exit::PluginFailed,
    };
    let remedy = err.remedy.as_ref().map(|r| match r {
        Remedy::ApproveCapabilities => "approve them with --yes, or name the ones to grant with --grant LABEL (no terminal to ask on)".to_string(),
        Remedy::ApproveOnEnable => "approve the new capabilities with --yes".to_string(),
        Remedy::ReviewHeldGrant { id } => format!(
            "review them with `secflow plugin permissions {id}` and approve with `secflow plugin enable {id}`"
        ),
        Remedy::Enable { id } => format!("turn it on with `secflow plugin enable {id}`"),
        Remedy::Release { id } => format!("lift it with `secflow plugin release {id}`"),
        Remedy::ExplainPolicy { policy_dir } => format!(
            "see `secflow policy explain --dev DIR` or edit {}",
            policy_dir.display()
        ),
        Remedy::Reinstall => "reinstall it".to_string(),
        Remedy::Build { dir } => format!("build it with `secflow plugin build {}`", dir.display()),
        Remedy::CreateManifest => "create one with `secflow plugin new`".to_string(),
        Remedy::GiveInput => "give it with --input FILE (or --input - for stdin)".to_string(),
    });
    fail(
        code,
        match remedy {
            Some(remedy) => format!("{}; {remedy}", err.message),
            None => err.message,
        },
    )
}

/// `?` on host results in the CLI.
pub trait HostResultExt<T> {
    fn cli(self) -> anyhow::Result<T>;
}

impl<T> HostResultExt<T> for Result<T, secflow_host::HostError> {
    fn cli(self) -> anyhow::Result<T> {
        self.map_err(host)
    }
}
