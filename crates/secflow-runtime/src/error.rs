//! Typed errors of loading and invoking plugins. Each says whether the plugin or the host is
//! at fault and what to do.

use crate::bindings::PluginError;
use serde::Serialize;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifest's `host` range excludes this SecFlow.
    #[error("{plugin}: {message}")]
    Incompatible { plugin: String, message: String },
    /// The bytes are not a valid WebAssembly component.
    #[error("{plugin}: the component is not a valid WebAssembly component: {message}")]
    InvalidComponent { plugin: String, message: String },
    /// The component uses an interface its manifest did not declare, or one SecFlow never
    /// grants. This is a refusal (exit code 3), not a bug in the host.
    #[error("{plugin}: refused: {message}")]
    Refused { plugin: String, message: String },
    /// The component does not implement the kind its manifest names.
    #[error("{plugin}: {message}")]
    KindMismatch { plugin: String, message: String },
    /// Host-side failure (engine, cache, linking).
    #[error("{plugin}: could not prepare the plugin: {message}")]
    Host { plugin: String, message: String },
}

impl LoadError {
    /// True when the plugin was refused for security reasons.
    pub fn is_refusal(&self) -> bool {
        matches!(self, LoadError::Refused { .. })
    }
}

/// Why an invocation did not produce an output.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum InvokeError {
    #[error("timeout: the plugin ran past its {limit_ms} ms deadline and was stopped")]
    Timeout { limit_ms: u64 },
    #[error("out of fuel: the plugin used its whole budget of {limit} fuel units")]
    OutOfFuel { limit: u64 },
    #[error(
        "memory limit: the plugin asked for {requested} bytes of linear memory; the limit is {limit}"
    )]
    MemoryLimit { limit: u64, requested: u64 },
    #[error("stack overflow: the plugin recursed past the stack limit")]
    StackOverflow,
    #[error("capability denied: {capability}: {reason}")]
    CapabilityDenied { capability: String, reason: String },
    #[error("output too large: {what} exceeded {limit} bytes")]
    OutputTooLarge { what: String, limit: u64 },
    #[error("log limit: {what} (limit {limit})")]
    LogLimit { what: String, limit: u64 },
    #[error("metric limit: {what} (limit {limit})")]
    MetricLimit { what: String, limit: u64 },
    #[error("kv limit: {what} (limit {limit} bytes)")]
    KvLimit { what: String, limit: u64 },
    #[error("filesystem quota: {what} in the writable grant {grant} (limit {limit})")]
    FsQuota {
        grant: String,
        what: String,
        limit: u64,
    },
    #[error("invalid output: {message}")]
    InvalidOutput { message: String },
    #[error("trap: the plugin crashed: {message}")]
    Trap { message: String },
    #[error("the plugin reported an error: {}", describe(error))]
    Plugin { error: PluginError },
    #[error("invalid configuration (refused before the plugin ran): {}", errors.join("; "))]
    InvalidConfig { errors: Vec<String> },
    #[error("{message}")]
    Unsupported { message: String },
    #[error("host error: {message}")]
    Host { message: String },
}

fn describe(e: &PluginError) -> String {
    match e {
        PluginError::InvalidInput(m) => format!("invalid input: {m}"),
        PluginError::InvalidConfig(m) => format!("invalid config: {m}"),
        PluginError::Denied(m) => format!("denied: {m}"),
        PluginError::Failed(m) => format!("failed: {m}"),
    }
}

impl InvokeError {
    /// A short stable name (`timeout`, `memory-limit`, ...) for reports and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeError::Timeout { .. } => "timeout",
            InvokeError::OutOfFuel { .. } => "out-of-fuel",
            InvokeError::MemoryLimit { .. } => "memory-limit",
            InvokeError::StackOverflow => "stack-overflow",
            InvokeError::CapabilityDenied { .. } => "capability-denied",
            InvokeError::OutputTooLarge { .. } => "output-too-large",
            InvokeError::LogLimit { .. } => "log-limit",
            InvokeError::MetricLimit { .. } => "metric-limit",
            InvokeError::KvLimit { .. } => "kv-limit",
            InvokeError::FsQuota { .. } => "fs-quota",
            InvokeError::InvalidOutput { .. } => "invalid-output",
            InvokeError::Trap { .. } => "trap",
            InvokeError::Plugin { .. } => "plugin-error",
            InvokeError::InvalidConfig { .. } => "invalid-config",
            InvokeError::Unsupported { .. } => "unsupported",
            InvokeError::Host { .. } => "host-error",
        }
    }

    /// True for sandbox violations: the plugin hit a limit, asked for something it was
    /// not granted, or returned something that breaks its contract. These count toward
    /// quarantine. A plain trap (a panic) or an error the plugin reported is not one.
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            InvokeError::Timeout { .. }
                | InvokeError::OutOfFuel { .. }
                | InvokeError::MemoryLimit { .. }
                | InvokeError::StackOverflow
                | InvokeError::CapabilityDenied { .. }
                | InvokeError::OutputTooLarge { .. }
                | InvokeError::LogLimit { .. }
                | InvokeError::MetricLimit { .. }
                | InvokeError::KvLimit { .. }
                | InvokeError::FsQuota { .. }
                | InvokeError::InvalidOutput { .. }
        )
    }
}
