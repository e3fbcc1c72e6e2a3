//! `secflow plugin release ID`: lifts a quarantine and resets the violation count.

use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, id: &str) -> anyhow::Result<Exit> {
    host.block_on(host.release(id)).cli()?;
    outln!("released {id}; its violation count is reset");
    Ok(Exit::Success)
}
