//! Automated vetting: what the marketplace checks on every upload, written into a report
//! stored with the version.
//!
//! A check that *fails* refuses the upload (nothing is stored): a bad or foreign signature,
//! an id outside the publisher's namespaces, a manifest or component the host would never
//! load. A check that *warns* keeps the upload and hands the finding to the marketplace
//! policies (Cedar), which decide between approval at once and the review queue: a
//! capability escalation over the previous version, secrets in the package, a failed
//! health check in the sandbox, an id that looks like another publisher's.

use serde::{Deserialize, Serialize};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Kept, and judged by the policies.
    Warn,
    /// The upload is refused.
    Fail,
}

/// One check of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    /// `signature`, `namespace`, `manifest`, `component`, `capability-diff`, `secrets`,
    /// `health`, `name-similarity`.
    pub name: String,
    pub status: Status,
    /// A sentence for people.
    pub summary: String,
}

/// A capability with the author's reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Capability {
    pub label: String,
    pub reason: String,
}

/// A secret found in the package, never the secret itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretFound {
    pub file: String,
    pub rule_id: String,
    pub line: u32,
    /// The line with the secret redacted.
    pub snippet: String,
}

/// The health check in the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrialHealth {
    pub ok: bool,
    pub message: String,
    pub duration_us: u64,
    pub fuel_used: Option<u64>,
    pub peak_memory_bytes: u64,
    /// The limits it ran under.
    pub memory_mib: u64,
    pub timeout_ms: u64,
    pub fuel: u64,
}

/// What the policies decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    /// Approved without a reviewer.
    pub auto_approved: bool,
    /// The policies that decided: the permit that approved, or the forbids that sent it to
    /// review (its reasons).
    pub policies: Vec<String>,
    pub errors: Vec<String>,
}

/// The vetting report of one upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub plugin_id: String,
    pub version: String,
    pub kind: String,
    pub publisher: String,
    /// Payload digest.
    pub sha256: String,
    pub size: u64,
    pub vetted_at: u64,
    pub checks: Vec<Check>,
    /// Key ids of the publisher's keys that signed it.
    pub signed_by: Vec<String>,
    pub capabilities: Vec<Capability>,
    /// The version the capability diff compares against.
    pub previous_version: Option<String>,
    /// Capability labels asked for beyond the previous version.
    pub escalation: Vec<String>,
    /// The component's imports (WIT interfaces).
    pub imports: Vec<String>,
    pub secrets: Vec<SecretFound>,
    pub health: Option<TrialHealth>,
    /// Other publishers' ids this one looks like.
    pub similar_ids: Vec<String>,
    /// Absent when the upload was refused before the policies were asked.
    pub decision: Option<Decision>,
}

impl Report {
    pub(crate) fn check(&mut self, name: &str, status: Status, summary: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_string(),
            status,
            summary: summary.into(),
        });
    }

    /// The first failed check, if any.
    pub fn failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.status == Status::Fail)
    }
}

/// Limits of the vetting health check: tight, whatever the manifest asks.
pub const TRIAL_MEMORY_MIB: u64 = 64;
pub const TRIAL_TIMEOUT_MS: u64 = 2_000;
pub const TRIAL_FUEL: u64 = 2_000_000_000;

/// The manifest's limits cut down to the trial's.
pub(crate) fn trial_limits(manifest: &mut secflow_manifest::Manifest) {
    let resolved = manifest.limits.resolve();
    let limits = &mut manifest.limits;
    limits.memory_mib = Some((resolved.memory_bytes >> 20).min(TRIAL_MEMORY_MIB));
    limits.timeout_ms = Some(resolved.timeout_ms.min(TRIAL_TIMEOUT_MS));
    limits.fuel = Some(resolved.fuel.unwrap_or(u64::MAX).min(TRIAL_FUEL));
}
