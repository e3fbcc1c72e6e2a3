impl Enricher for MyPlugin {
    fn enrich(mut findings: Vec<Finding>) -> Result<Vec<Finding>, PluginError> {
        for f in &mut findings {
            f.tags.push("enriched".to_string());
        }
        Ok(findings)
    }
}

secflow_pdk::export_enricher!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_findings() {
        let out = MyPlugin::enrich(vec![finding("r", Severity::Low, "t", "m".into())]).unwrap();
        assert_eq!(out[0].tags, vec!["enriched".to_string()]);
    }
}
