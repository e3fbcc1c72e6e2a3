//! Test plugin: `echo` returns its params unchanged; the smallest useful invocation.

use secflow_pdk::prelude::*;

struct Noop;

impl Plugin for Noop {}

impl Action for Noop {
    fn actions() -> Vec<ActionInfo> {
        vec![action("echo", "Returns params unchanged", &[])]
    }

    fn execute(_action: &str, params: Value) -> Result<Value, PluginError> {
        Ok(params)
    }
}

secflow_pdk::export_action!(Noop);
