//! `secflow token create|list|revoke`: API tokens for `secflow serve`.

use crate::cli::TokenCommand;
use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, command: TokenCommand) -> anyhow::Result<Exit> {
    match command {
        TokenCommand::Create {
            name,
            role,
            expires,
            json,
        } => {
            let created = host
                .block_on(host.create_token(&name, &role, expires))
                .cli()?;
            if json {
                outln!(
                    "{}",
                    secflow_term::to_json_pretty(&serde_json::json!({
                        "token": created.token,
                        "info": created.info,
                    }))?
                );
            } else {
                errln!(
                    "created token {} ({}, role {}{}); it is shown this once:",
                    created.info.id,
                    created.info.name,
                    created.info.role,
                    created
                        .info
                        .expires_at
                        .as_deref()
                        .map(|t| format!(", expires {t}"))
                        .unwrap_or_default()
                );
                outln!("{}", created.token);
            }
        }
        TokenCommand::List { json } => {
            let tokens = host.block_on(host.list_tokens()).cli()?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&tokens)?);
            } else if tokens.is_empty() {
                outln!("no tokens; create one with `secflow token create --role viewer`");
            } else {
                let width = tokens
                    .iter()
                    .map(|t| t.name.chars().count())
                    .max()
                    .unwrap_or(4)
                    .max(4);
                outln!(
                    "{:<12}  {:<width$}  {:<9}  {:<20}  STATE",
                    "ID",
                    "NAME",
                    "ROLE",
                    "CREATED"
                );
                for t in &tokens {
                    let state = match (&t.revoked_at, &t.expires_at) {
                        (Some(at), _) => format!("revoked {at}"),
                        (None, Some(at)) => format!("expires {at}"),
                        (None, None) => "active".to_string(),
                    };
                    outln!(
                        "{:<12}  {:<width$}  {:<9}  {:<20}  {state}",
                        t.id,
                        t.name,
                        t.role,
                        t.created_at
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let revoked = host.block_on(host.revoke_token(&id)).cli()?;
            errln!("revoked token {} ({})", revoked.id, revoked.name);
        }
    }
    Ok(Exit::Success)
}
