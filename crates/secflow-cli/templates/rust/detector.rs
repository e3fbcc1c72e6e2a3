impl Detector for MyPlugin {
    fn detect(file: FileInput) -> Result<Vec<Finding>, PluginError> {
        let text = String::from_utf8_lossy(&file.content);
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.contains("FIXME-SECURITY"))
            .map(|(i, line)| Finding {
                location: Some(Location {
                    path: file.path.clone(),
                    start_line: i as u32 + 1,
                    start_column: 1,
                    end_line: i as u32 + 1,
                    end_column: line.len() as u32 + 1,
                    snippet: Some(line.trim().to_string()),
                }),
                ..finding("fixme-security", Severity::Low, "Security FIXME", "an unresolved security FIXME".into())
            })
            .collect())
    }
}

secflow_pdk::export_detector!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_marked_lines() {
        let file = FileInput { path: "a.py".into(), content: b"ok\n# FIXME-SECURITY check auth\n".to_vec() };
        let found = MyPlugin::detect(file).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].location.as_ref().unwrap().start_line, 2);
    }
}
