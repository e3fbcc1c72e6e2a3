//! Secret detection: the engine of SecFlow's official secrets detector.
//!
//! The same crate runs natively (tests, benchmarks, the host) and inside the detector's
//! WebAssembly plugin (`wasm32-wasip2`), so it is pure computation: no threads, files,
//! environment, clock or `unsafe`. Everything a scan needs is compiled once into a
//! [`Scanner`], which is `Send + Sync` and can be shared by any number of scans.
//!
//! # Rules
//! The built-in rules live in `rules/secrets.toml`, embedded with `include_str!`; the
//! format (documented at the top of that file) is in the style of gitleaks: an id, a
//! regex with a secret group, lowercase keywords that gate the regex, an optional
//! minimum entropy, allowlists and named checks, plus a description, remediation help,
//! severity, confidence and CWE for reports. [`Scanner::from_toml`] accepts custom rule
//! files in the same format.
//!
//! # How a scan stays fast
//! A file is first searched once by a single Aho-Corasick automaton over all rules'
//! keywords (ASCII case-insensitive, without lower-casing the file). Only rules whose
//! keywords occur then run their regex over the file, as bytes, with Unicode disabled so
//! every regex stays on the DFA engines. Line and column numbers are computed only for
//! the few matches, in one forward pass. There are no per-line loops over the file.
//!
//! Measured on this project's 2-core machine, one core: about 410–480 MB/s natively on
//! real source trees (crates.io sources, Python site-packages), about 410 MB/s for the
//! same files as `wasm32-wasip2` code run by V8, and 170 MB/s natively on a synthetic
//! worst case where every line mentions a password or token.
//!
//! Start-up matters too: a plugin may get a fresh instance per file. [`Scanner::builtin`]
//! therefore only parses the rules and builds the keyword automaton (about 2 ms natively,
//! under 3 ms in a fresh V8 WebAssembly instance) and compiles a rule's regexes the first
//! time a file needs them (a typical first file: 1–2 ms more). Eagerly compiling all
//! rules took 10 ms natively. Reusing one scanner for many files is still cheapest.
//!
//! # What a finding reveals
//! A [`SecretMatch`] never contains the secret: its snippet keeps at most the first four
//! characters. No digest of the secret is kept either: an unkeyed hash of a weak password
//! (database URLs allow those) is reversed by guessing, so a finding carries none. Hosts
//! identify findings by their location and rule (the scan's fingerprints).
//!
//! ```
//! use secflow_secrets::Scanner;
//!
//! let scanner = Scanner::builtin();
//! let key = format!("AKIA{}", "Q2R7T5W3Z6Y4U2P7");
//! let source = format!("aws_access_key_id = {key}\n");
//! let found = scanner.scan("config/app.ini", source.as_bytes());
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].rule_id, "aws-access-key-id");
//! assert_eq!((found[0].line, found[0].column), (1, 21));
//! assert!(!found[0].snippet.contains(&key));
//! ```

mod checks;
mod engine;
mod rules;
mod text;

#[cfg(test)]
mod tests;

use serde::Serialize;
use std::fmt;

pub use engine::Scanner;

/// How sure a rule is that its matches are real secrets (decides overlaps between rules).
pub use secflow_severity::Confidence;
/// How bad a leak of this kind of secret is; the scale every SecFlow report shares.
pub use secflow_severity::Severity;

/// What a report needs to know about a rule (SARIF `rules[]`, the host's catalogue).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleInfo {
    /// Stable kebab-case id, e.g. `github-pat`.
    pub id: String,
    /// One-line name.
    pub title: String,
    /// What this secret is and why a leak matters.
    pub description: String,
    /// How to remediate.
    pub help: String,
    /// Impact of a leak.
    pub severity: Severity,
    /// Likelihood that a match is a real secret.
    pub confidence: Confidence,
    /// CWE number: 798, 321 or 522.
    pub cwe: u32,
}

/// Options applied on top of a rule set.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Rule ids to leave out. Unknown ids are an error, so a typo cannot silently keep a
    /// noisy rule enabled.
    pub disabled_rules: Vec<String>,
    /// Extra allowlist regexes (Rust syntax, bytes, Unicode off) on the secret.
    pub extra_allowlist: Vec<String>,
    /// Path allowlist regexes (on `/`-separated paths) replacing the rule file's list.
    /// `None` keeps the default (fixture directories and lockfiles); `Some(vec![])`
    /// scans every path.
    pub allow_paths: Option<Vec<String>>,
    /// Added to every rule's minimum entropy (only rules that have one). Positive values
    /// report less, negative values more.
    pub min_entropy_delta: f64,
}

/// One secret found in a file. Positions are 1-based; lines are split at `\n` only (a
/// `\r` before it belongs to the line), columns count characters, decoding the line
/// lossily (each invalid UTF-8 sequence counts as one character). The region is the
/// secret itself, not the text around it; the end is exclusive (SARIF `endColumn`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretMatch {
    /// Id of the rule that found it.
    pub rule_id: String,
    /// Line of the secret's first character.
    pub line: u32,
    /// Column of the secret's first character.
    pub column: u32,
    /// Line of the character just after the secret.
    pub end_line: u32,
    /// Column of the character just after the secret.
    pub end_column: u32,
    /// The source line of the secret's start with the secret redacted (at most its first
    /// four characters, fewer for short secrets, then `*****`), trimmed, and cut to about
    /// 200 characters around the secret. Never contains the whole secret.
    pub snippet: String,
    /// Shannon entropy of the secret in bits per byte, when the rule has an entropy gate.
    pub entropy: Option<f64>,
}

/// A rule file or option that cannot be used. Names the rule and the field when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Id of the offending rule (or the offending id in `disabled_rules`), if any.
    pub rule_id: Option<String>,
    /// The field, e.g. `regex`, `allowlist.regexes[2]`, `disabled_rules`, `toml`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl RuleError {
    fn new(rule_id: Option<&str>, field: impl Into<String>, message: impl Into<String>) -> Self {
        RuleError {
            rule_id: rule_id.map(str::to_owned),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule_id {
            Some(id) => write!(f, "rule `{id}`, field `{}`: {}", self.field, self.message),
            None => write!(f, "field `{}`: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for RuleError {}
