//! The security overview an administrator looks at first: what the sandbox stopped, which
//! packages were refused, what the policies denied, what is quarantined, whether the audit
//! log is intact, and which plugins run (and fail) most. One host operation, so the web
//! dashboard and the JSON route (and any later front end) show the same facts.

use crate::{Host, Integrity, Result};
use secflow_audit::{Action, Entry};
use secflow_registry::{InstalledPlugin, PluginUsage};

/// Most entries of each recent list.
pub const MAX_RECENT: u64 = 200;

/// See the module documentation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SecurityOverview {
    pub summary: crate::AuditSummary,
    /// The audit log verified now (hash chain, Merkle tree, stored checkpoints).
    pub audit_intact: bool,
    /// The verification's report, or what it found wrong.
    pub audit: serde_json::Value,
    pub quarantined: Vec<InstalledPlugin>,
    /// Newest first.
    pub recent_violations: Vec<Entry>,
    pub recent_verification_failures: Vec<Entry>,
    pub recent_policy_denials: Vec<Entry>,
    pub top_by_runs: Vec<PluginUsage>,
    pub top_by_errors: Vec<PluginUsage>,
}

impl Host {
    /// The security overview, with up to `recent` (at most [`MAX_RECENT`]) entries per
    /// list. Verifies the whole audit log: its cost grows with the log (about a second per
    /// million events).
    pub async fn security_overview(&self, recent: u64) -> Result<SecurityOverview> {
        let recent = recent.clamp(1, MAX_RECENT);
        self.flush().await?;
        let summary = self.audit_summary().await?;
        let (audit_intact, audit) = match self.audit_verify(None).await? {
            Integrity::Intact(report) => (
                true,
                serde_json::to_value(report).unwrap_or(serde_json::Value::Null),
            ),
            Integrity::Tampered {
                first_bad_entry,
                message,
            } => (
                false,
                serde_json::json!({ "first_bad_entry": first_bad_entry, "message": message }),
            ),
        };
        let log = self.audit_log().await?;
        let recent_violations = log.recent(Action::SandboxViolation, None, recent).await?;
        let recent_verification_failures = log
            .recent(Action::SignatureVerify, Some("refused"), recent)
            .await?;
        let recent_policy_denials = log
            .recent(Action::PolicyDecision, Some("deny"), recent)
            .await?;
        let (quarantined, top_by_runs, top_by_errors) = if self.has_registry() {
            let quarantined = self
                .list()
                .await?
                .into_iter()
                .map(|row| row.plugin)
                .filter(|p| p.quarantined)
                .collect();
            let mut registry = self.registry().await?;
            let by_runs = registry.usage(false, 10).await?;
            let by_errors = registry.usage(true, 10).await?;
            (quarantined, by_runs, by_errors)
        } else {
            Default::default()
        };
        Ok(SecurityOverview {
            summary,
            audit_intact,
            audit,
            quarantined,
            recent_violations,
            recent_verification_failures,
            recent_policy_denials,
            top_by_runs,
            top_by_errors,
        })
    }
}
