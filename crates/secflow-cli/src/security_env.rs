//! The environment variables of the security specification. Two switches it names cannot
//! be honoured without giving up what SecFlow is for, so setting them off is refused with
//! the reason, never ignored; the others map onto SecFlow's own settings.

use crate::cli::{Cli, Command, PluginCommand};
use crate::exit::{Exit, fail};

/// Whether an environment value means "off".
fn is_off(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "false" | "0" | "no" | "off" | "disabled"
    )
}

/// Whether an environment value means "on".
fn is_on(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "enabled"
    )
}

/// Checks the security specification's variables against the command about to run, and
/// applies `SECFLOW_SECURITY_POLICY_FILE`. `get` reads the environment (a parameter so
/// tests can pass their own).
pub fn apply(cli: &mut Cli, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    if let Some(v) = get("SECFLOW_SIGNATURE_VERIFICATION")
        && is_off(&v)
    {
        return Err(fail(
            Exit::Usage,
            "SECFLOW_SIGNATURE_VERIFICATION cannot turn verification off: every package is checked against the trust store before its bytes are parsed, and a grant is bound to its signers. To try an unsigned plugin you are writing, use `secflow run --dev DIR` or install it with `--dev` (the policies see developer mode); unset the variable",
        ));
    }
    if let Some(v) = get("SECFLOW_SANDBOX_ENABLED")
        && is_off(&v)
    {
        return Err(fail(
            Exit::Usage,
            "SECFLOW_SANDBOX_ENABLED cannot turn the sandbox off: plugins are untrusted WebAssembly components, and the sandbox (memory, time and output limits, only granted capabilities) is what makes running them safe; there is no unsandboxed mode. Unset the variable",
        ));
    }
    if let Some(v) = get("SECFLOW_ALLOW_UNSIGNED_PLUGINS")
        && is_on(&v)
    {
        let admits_without_dev = match &cli.command {
            Command::Plugin(PluginCommand::Install(a) | PluginCommand::Upgrade(a)) => !a.dev,
            Command::Plugin(PluginCommand::Sync { .. }) => true,
            _ => false,
        };
        if admits_without_dev {
            return Err(fail(
                Exit::Usage,
                "SECFLOW_ALLOW_UNSIGNED_PLUGINS applies only in developer mode: add --dev to install an unsigned package (recorded, and judged by the policies as dev); `plugin sync` never admits unsigned packages",
            ));
        }
    }
    if let Some(v) = get("SECFLOW_AUDIT_LOG_LEVEL") {
        audit_log_level(&v)?;
    }
    if cli.policy_dir.is_none()
        && let Some(path) = get("SECFLOW_SECURITY_POLICY_FILE").filter(|p| !p.is_empty())
    {
        let path = std::path::PathBuf::from(path);
        if path.is_file() {
            return Err(fail(
                Exit::Usage,
                format!(
                    "SECFLOW_SECURITY_POLICY_FILE={} is a file; SecFlow reads a directory of Cedar policies (*.cedar) and their schema: point it at that directory (`secflow policy init` writes one)",
                    path.display()
                ),
            ));
        }
        cli.policy_dir = Some(path);
    }
    Ok(())
}

/// `SECFLOW_AUDIT_LOG_LEVEL`: how much the host's audit and admission code logs to stderr
/// (a `tracing` level). It never changes what the audit log records: every security event
/// is always written.
pub fn audit_log_level(value: &str) -> anyhow::Result<&'static str> {
    Ok(match value.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" => "error",
        _ => {
            return Err(fail(
                Exit::Usage,
                format!(
                    "SECFLOW_AUDIT_LOG_LEVEL=`{value}` is not a level; use debug, info, warning or error (every security event is recorded whatever the level)"
                ),
            ));
        }
    })
}
