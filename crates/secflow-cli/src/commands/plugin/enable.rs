//! `secflow plugin enable ID [--yes]`: turns a plugin on; a capability increase held for
//! approval is shown and approved here.

use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, id: &str, yes: bool) -> anyhow::Result<Exit> {
    let approver = super::install::CliApprover::new(yes, false, true);
    let version = host.block_on(host.enable(id, &approver)).cli()?;
    outln!("enabled {id} {version}");
    Ok(Exit::Success)
}
