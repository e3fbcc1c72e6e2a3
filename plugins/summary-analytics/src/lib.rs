//! Summary analytics: severity counts, top CWEs, hotspot files and a risk score.
//!
//! The risk score weighs findings by severity and confidence (a known-exploited finding
//! counts double) and saturates: `100 * (1 - e^(-weight / 40))`, so one critical finding is
//! already a visible risk and a hundred low ones do not outrank a few criticals by much.

use secflow_pdk::prelude::*;
use std::collections::BTreeMap;

pub struct SummaryAnalytics;

impl Plugin for SummaryAnalytics {}

fn weight(f: &Finding) -> f64 {
    let base = match f.severity {
        Severity::Critical => 10.0,
        Severity::High => 5.0,
        Severity::Medium => 2.0,
        Severity::Low => 0.5,
        Severity::Info => 0.0,
    };
    let confidence = match f.confidence {
        Confidence::High => 1.0,
        Confidence::Medium => 0.8,
        Confidence::Low => 0.5,
    };
    let kev = f
        .properties
        .iter()
        .any(|(k, v)| k == "kev.known-exploited" && v == "true");
    base * confidence * if kev { 2.0 } else { 1.0 }
}

/// Risk score in 0..=100 from the total weight.
pub fn risk_score(total_weight: f64) -> f64 {
    (100.0 * (1.0 - (-total_weight / 40.0).exp())).clamp(0.0, 100.0)
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Info => "info",
    }
}

const SEVERITIES: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Info,
];

fn metric(name: &str, value: f64, labels: &[(&str, String)]) -> Metric {
    Metric {
        name: name.into(),
        value,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

/// Escapes text for a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

impl Analytics for SummaryAnalytics {
    fn analyze(findings: Vec<Finding>) -> Result<Report, PluginError> {
        let top = config()["top"].as_u64().unwrap_or(5) as usize;
        let mut by_severity: BTreeMap<&str, usize> = BTreeMap::new();
        let mut cwes: BTreeMap<u32, (usize, String)> = BTreeMap::new();
        let mut files: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        let mut total_weight = 0.0;
        for f in &findings {
            *by_severity.entry(severity_name(f.severity)).or_default() += 1;
            for &c in &f.cwe_ids {
                let entry = cwes.entry(c).or_default();
                entry.0 += 1;
                if entry.1.is_empty()
                    && let Some((_, name)) = f
                        .properties
                        .iter()
                        .find(|(k, _)| k == &format!("cwe.{c}.name"))
                {
                    entry.1 = name.clone();
                }
            }
            let w = weight(f);
            total_weight += w;
            if let Some(loc) = &f.location
                && !loc.path.is_empty()
            {
                let e = files.entry(loc.path.clone()).or_default();
                e.0 += w;
                e.1 += 1;
            }
        }
        let risk = risk_score(total_weight);
        let mut metrics = vec![
            metric("findings.total", findings.len() as f64, &[]),
            metric("risk.score", (risk * 10.0).round() / 10.0, &[]),
        ];
        for s in SEVERITIES {
            let n = by_severity.get(severity_name(s)).copied().unwrap_or(0);
            metrics.push(metric(
                "findings.by_severity",
                n as f64,
                &[("severity", severity_name(s).to_string())],
            ));
        }
        let mut top_cwes: Vec<(u32, usize, String)> = cwes
            .into_iter()
            .map(|(c, (n, name))| (c, n, name))
            .collect();
        top_cwes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top_cwes.truncate(top);
        for (c, n, _) in &top_cwes {
            metrics.push(metric(
                "findings.by_cwe",
                *n as f64,
                &[("cwe", format!("CWE-{c}"))],
            ));
        }
        let mut hotspots: Vec<(String, f64, usize)> =
            files.into_iter().map(|(p, (w, n))| (p, w, n)).collect();
        hotspots.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hotspots.truncate(top);

        let level = match risk {
            r if r >= 75.0 => "high",
            r if r >= 40.0 => "elevated",
            r if r > 0.0 => "low",
            _ => "none",
        };
        // Counts by severity are metrics (`findings.by_severity`), not text: every report
        // already shows them once in its own summary.
        let mut md = format!("**Risk score: {risk:.0}/100 ({level})**\n");
        if !top_cwes.is_empty() {
            md.push_str("\n**Top CWEs**\n\n| CWE | Name | Findings |\n|---|---|---:|\n");
            for (c, n, name) in &top_cwes {
                md.push_str(&format!("| CWE-{c} | {} | {n} |\n", cell(name)));
            }
        }
        if !hotspots.is_empty() {
            md.push_str("\n**Hotspot files**\n\n| File | Findings | Weight |\n|---|---:|---:|\n");
            for (path, w, n) in &hotspots {
                md.push_str(&format!("| `{}` | {n} | {w:.1} |\n", cell(path)));
            }
        }
        Ok(Report {
            metrics,
            summary_markdown: md,
        })
    }
}

secflow_pdk::export_analytics!(SummaryAnalytics);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_saturates() {
        assert_eq!(risk_score(0.0), 0.0);
        assert!(risk_score(10.0) > 20.0);
        assert!(risk_score(1000.0) <= 100.0);
        assert!(risk_score(50.0) > risk_score(10.0));
    }
}
