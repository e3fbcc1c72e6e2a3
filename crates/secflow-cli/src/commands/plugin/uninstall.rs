//! `secflow plugin uninstall ID`: every version, the grant, the records and the key-value
//! stores.

use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, id: &str, json: bool) -> anyhow::Result<Exit> {
    let removed = host.block_on(host.uninstall(id)).cli()?;
    let versions: Vec<&str> = removed.iter().map(|v| v.version.as_str()).collect();
    if json {
        outln!(
            "{}",
            serde_json::json!({"uninstalled": id, "versions": versions})
        );
    } else {
        outln!("uninstalled {id} ({})", versions.join(", "));
    }
    Ok(Exit::Success)
}
