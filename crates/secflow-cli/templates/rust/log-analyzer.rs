impl LogAnalyzer for MyPlugin {
    fn analyze_logs(source: String, entries: Vec<LogEntry>) -> Result<Vec<Finding>, PluginError> {
        Ok(entries
            .iter()
            .filter(|e| e.message.contains("Failed password"))
            .map(|e| Finding {
                location: Some(Location {
                    path: source.clone(),
                    start_line: e.line as u32,
                    start_column: 1,
                    end_line: e.line as u32,
                    end_column: 1,
                    snippet: Some(e.message.clone()),
                }),
                ..finding("failed-login", Severity::Low, "Failed login", "a failed password attempt".into())
            })
            .collect())
    }
}

secflow_pdk::export_log_analyzer!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_failed_logins() {
        let entries = vec![LogEntry { line: 3, timestamp: None, message: "sshd: Failed password for root".into() }];
        assert_eq!(MyPlugin::analyze_logs("auth.log".into(), entries).unwrap().len(), 1);
    }
}
