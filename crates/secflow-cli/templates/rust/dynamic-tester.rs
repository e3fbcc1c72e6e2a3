impl DynamicTester for MyPlugin {
    fn run_tests(target: Target, _config: Value) -> Result<Vec<AttackResult>, PluginError> {
        // A real tester sends probes with secflow_pdk::http (declare the target host as a
        // network capability). This sample only checks the target description.
        let insecure = target.url.starts_with("http://");
        Ok(vec![AttackResult {
            attack_id: "plaintext-endpoint".into(),
            name: "Endpoint without TLS".into(),
            category: "transport".into(),
            succeeded: insecure,
            severity: if insecure { Severity::Medium } else { Severity::Info },
            request: target.url.clone(),
            response: String::new(),
            evidence: if insecure { "the target URL uses http://".into() } else { String::new() },
            finding: None,
        }])
    }
}

secflow_pdk::export_dynamic_tester!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_plain_http() {
        let t = Target { kind: "http-api".into(), url: "http://x".into(), description: String::new(), properties: vec![] };
        assert!(MyPlugin::run_tests(t, Value::Null).unwrap()[0].succeeded);
    }
}
