//! `secflow plugin check`: every stored package present and unmodified (exit 3 if not).

use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, json: bool) -> anyhow::Result<Exit> {
    let problems = host.block_on(host.check_registry()).cli()?;
    if json {
        outln!(
            "{}",
            serde_json::json!({"intact": problems.is_empty(), "problems": problems})
        );
    } else if problems.is_empty() {
        outln!("registry intact: every installed package present and unmodified");
    } else {
        for p in &problems {
            errln!("problem: {p}");
        }
    }
    Ok(if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Refused
    })
}
