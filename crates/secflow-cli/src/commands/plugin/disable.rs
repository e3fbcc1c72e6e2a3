//! `secflow plugin disable ID`: turns a plugin off; it stays installed.

use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, id: &str) -> anyhow::Result<Exit> {
    host.block_on(host.disable(id)).cli()?;
    outln!("disabled {id}");
    Ok(Exit::Success)
}
