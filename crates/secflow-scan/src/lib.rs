//! `secflow scan`: the findings pipeline and its reports.
//!
//! [`pipeline::scan`] walks a target and runs sandboxed plugins over it (detectors on every
//! file, log analyzers on log files, then enrichers in order, then analytics), producing a
//! [`ScanReport`]: deduplicated findings with stable fingerprints, per-plugin statistics,
//! the failures the scan survived, and skipped files. [`output`] renders a report as a
//! terminal table, versioned JSON, SARIF 2.1.0 (as GitHub code scanning reads it) or a
//! self-contained HTML page. Secrets are redacted in every output unless asked otherwise.

pub mod baseline;
pub mod fingerprint;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod redact;
pub mod report;
pub mod suppress;
pub mod walk;

pub use baseline::Baseline;
pub use model::{Confidence, Finding, Location, RuleInfo, Severity};
pub use pipeline::{NoProgress, Progress, ScanError, ScanOptions, ScanPlugin, scan};
pub use report::{PluginFailure, PluginStats, ScanReport, SourceRoot};
