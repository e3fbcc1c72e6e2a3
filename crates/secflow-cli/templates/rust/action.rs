impl Action for MyPlugin {
    fn actions() -> Vec<ActionInfo> {
        vec![action("greet", "Greets `name`", &[("name", "string", true)])]
    }

    fn execute(action: &str, params: Value) -> Result<Value, PluginError> {
        match action {
            "greet" => {
                let name = params["name"].as_str().ok_or_else(|| invalid_input("`name` must be a string"))?;
                Ok(json!(format!("Hello, {name}!")))
            }
            other => Err(invalid_input(format!("unknown action `{other}`"))),
        }
    }
}

secflow_pdk::export_action!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets() {
        let out = MyPlugin::execute("greet", json!({"name": "Ada"})).unwrap();
        assert_eq!(out, json!("Hello, Ada!"));
        assert!(MyPlugin::execute("greet", json!({})).is_err());
    }
}
