//! `secflow key generate|list|export`.

use crate::cli::KeyCommand;
use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, cmd: KeyCommand) -> anyhow::Result<Exit> {
    match cmd {
        KeyCommand::Generate { name } => {
            let public = host.generate_key(&name).cli()?;
            outln!("Generated key `{name}`");
            outln!("  key id  {}", public.key_id);
            outln!("  public  {}", public.public);
            outln!("  files   {}", host.key_files(&name).display());
        }
        KeyCommand::List { json } => {
            let list = host.list_keys().cli()?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&list)?);
            } else if list.is_empty() {
                outln!(
                    "No keys under {}; create one with `secflow key generate --name NAME`",
                    host.paths().keys().display()
                );
            } else {
                for k in list {
                    outln!("{:<20} {}", k.name, k.key_id);
                }
            }
        }
        KeyCommand::Export { name } => {
            let public = host.public_key(&name).cli()?;
            outln!("{}", secflow_term::to_json_pretty(&public)?);
        }
    }
    Ok(Exit::Success)
}
