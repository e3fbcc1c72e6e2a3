//! Test plugin for measurements: `echo` returns its params unchanged (the smallest useful
//! invocation); `work` runs a CPU-bound loop of `n` rounds (epoch versus fuel overhead).

use secflow_pdk::prelude::*;

struct Noop;

impl Plugin for Noop {}

impl Action for Noop {
    fn actions() -> Vec<ActionInfo> {
        vec![
            action("echo", "Returns params unchanged", &[]),
            action(
                "work",
                "Runs `n` rounds of integer arithmetic",
                &[("n", "integer", true)],
            ),
        ]
    }

    fn execute(action: &str, params: Value) -> Result<Value, PluginError> {
        match action {
            "work" => {
                let n = params["n"]
                    .as_u64()
                    .ok_or_else(|| invalid_input("`n` must be an integer"))?;
                let mut x: u64 = 1;
                for i in 0..n {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
                }
                Ok(json!(x))
            }
            _ => Ok(params),
        }
    }
}

secflow_pdk::export_action!(Noop);
