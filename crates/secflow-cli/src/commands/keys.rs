//! `secflow key generate|list|export`.

use crate::cli::KeyCommand;
use crate::exit::{Exit, fail};
use crate::home::Home;
use secflow_trust::KeyDir;

pub fn run(home: &Home, cmd: KeyCommand) -> anyhow::Result<Exit> {
    let keys = KeyDir::new(home.keys());
    let usage = |e: secflow_trust::TrustError| fail(Exit::Usage, e.to_string());
    match cmd {
        KeyCommand::Generate { name } => {
            let public = keys.generate(&name).map_err(usage)?;
            outln!("Generated key `{name}`");
            outln!("  key id  {}", public.key_id);
            outln!("  public  {}", public.public);
            outln!(
                "  files   {}",
                keys.dir.join(format!("{name}.{{key,pub}}")).display()
            );
        }
        KeyCommand::List { json } => {
            let list = keys.list().map_err(usage)?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&list)?);
            } else if list.is_empty() {
                outln!(
                    "No keys under {}; create one with `secflow key generate --name NAME`",
                    keys.dir.display()
                );
            } else {
                for k in list {
                    outln!("{:<20} {}", k.name, k.key_id);
                }
            }
        }
        KeyCommand::Export { name } => {
            let public = keys.public(&name).map_err(usage)?;
            outln!("{}", secflow_term::to_json_pretty(&public)?);
        }
    }
    Ok(Exit::Success)
}
