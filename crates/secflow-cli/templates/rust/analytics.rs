impl Analytics for MyPlugin {
    fn analyze(findings: Vec<Finding>) -> Result<Report, PluginError> {
        let high = findings.iter().filter(|f| matches!(f.severity, Severity::High | Severity::Critical)).count();
        Ok(Report {
            metrics: vec![
                Metric { name: "findings".into(), value: findings.len() as f64, labels: vec![] },
                Metric { name: "high_or_critical".into(), value: high as f64, labels: vec![] },
            ],
            summary_markdown: format!("**{}** findings, **{high}** high or critical.", findings.len()),
        })
    }
}

secflow_pdk::export_analytics!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let r = MyPlugin::analyze(vec![finding("r", Severity::High, "t", "m".into())]).unwrap();
        assert_eq!(r.metrics[1].value, 1.0);
    }
}
