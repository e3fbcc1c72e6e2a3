//! The severity and confidence scales shared by the rule engines (`secflow-secrets`,
//! `secflow-patterns`), the plugin SDK and the scan reports, so a rule file, a plugin and a
//! report spell and order them the same way. Builds for the host and for wasm32-wasip2.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; no direct risk.
    #[default]
    Info,
    /// Hard to exploit or little harm possible.
    Low,
    /// Exploitable under some conditions, or limited access.
    Medium,
    /// Likely exploitable with significant impact.
    High,
    /// Directly exploitable, broad control.
    Critical,
}

impl Severity {
    /// Worst first, as reports list them.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// The lowercase spelling used in rule files, configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    /// Case-insensitive; the error lists the valid values.
    fn from_str(s: &str) -> Result<Severity, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown severity `{s}`; use one of critical, high, medium, low, info")
            })
    }
}

/// How likely a finding is a true positive.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Often a false positive; review needed.
    Low,
    /// Usually right (the default).
    #[default]
    Medium,
    /// Rarely a false positive.
    High,
}

impl Confidence {
    pub const ALL: [Confidence; 3] = [Confidence::High, Confidence::Medium, Confidence::Low];

    /// The lowercase spelling used in rule files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Confidence {
    type Err = String;
    fn from_str(s: &str) -> Result<Confidence, String> {
        Confidence::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown confidence `{s}`; use one of high, medium, low"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_spelling_and_parsing_agree() {
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
            assert_eq!(serde_json_like(s.as_str()), s.to_string());
        }
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!(
            "loud"
                .parse::<Severity>()
                .unwrap_err()
                .contains("critical, high")
        );
        for c in Confidence::ALL {
            assert_eq!(c.as_str().parse::<Confidence>(), Ok(c));
        }
        assert_eq!(Confidence::default(), Confidence::Medium);
    }

    fn serde_json_like(s: &str) -> String {
        s.to_string()
    }
}
