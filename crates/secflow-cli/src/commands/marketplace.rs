//! `secflow marketplace add|list|search|mirror|publish|review|sync`, and the revocation
//! poll before runs and scans. Installs by id are `secflow plugin install ID --from NAME`,
//! updates `secflow plugin update`.

use crate::cli::MarketplaceCommand;
use crate::exit::{Exit, fail};
use secflow_host::Host;
use secflow_market_client::{Client, ClientError};

/// A client error as the CLI's exit: refusals are 3, bad input 2, the rest 1.
pub fn client_fail(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Invalid(_) | ClientError::NotFound(_) => fail(Exit::Usage, e.to_string()),
        ClientError::Refused(_) => fail(Exit::Refused, e.to_string()),
        other => anyhow::anyhow!(other.to_string()),
    }
}

/// The marketplace to use when none is named: the only one added.
pub fn default_marketplace(client: &Client, named: Option<String>) -> anyhow::Result<String> {
    if let Some(name) = named {
        return Ok(name);
    }
    let list = client.list().map_err(client_fail)?;
    match list.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(fail(
            Exit::Usage,
            "no marketplace added; add one with `secflow marketplace add NAME URL --key FILE`",
        )),
        _ => Err(fail(
            Exit::Usage,
            format!(
                "several marketplaces are added ({}); name one with --from",
                list.iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// `secflow marketplace search` and `secflow plugin search --remote`: the signed index's
/// plugins whose id, name, description or tags hold every word, filtered by kind,
/// category and tag.
pub fn search_remote(
    host: &Host,
    from: Option<String>,
    text: String,
    kind: Option<String>,
    category: Option<String>,
    tag: Option<String>,
    json: bool,
) -> anyhow::Result<Exit> {
    let client = Client::new(host.clone());
    let name = default_marketplace(&client, from)?;
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let found: Vec<_> = host
        .block_on(client.search(&name, &text))
        .map_err(client_fail)?
        .into_iter()
        .filter(|p| kind.as_deref().is_none_or(|k| eq(&p.kind, k)))
        .filter(|p| {
            category
                .as_deref()
                .is_none_or(|c| p.categories.iter().any(|x| eq(x, c)))
        })
        .filter(|p| {
            tag.as_deref()
                .is_none_or(|t| p.tags.iter().any(|x| eq(x, t)))
        })
        .collect();
    if json {
        outln!("{}", secflow_term::to_json_pretty(&found)?);
    } else if found.is_empty() {
        outln!("nothing in {name} matches");
    } else {
        for p in &found {
            let latest = p
                .versions
                .iter()
                .rev()
                .find(|v| !v.yanked)
                .or(p.versions.last())
                .map_or("-", |v| v.version.as_str());
            outln!(
                "{:<28} {:<8} {:<14} {}",
                p.id,
                latest,
                p.kind,
                p.description
            );
        }
    }
    Ok(Exit::Success)
}

pub fn run(host: &Host, command: MarketplaceCommand) -> anyhow::Result<Exit> {
    let client = Client::new(host.clone());
    match command {
        MarketplaceCommand::Add {
            name,
            url,
            key,
            poll,
            json,
        } => {
            let text = std::fs::read_to_string(&key)
                .map_err(|e| fail(Exit::Usage, format!("cannot read {}: {e}", key.display())))?;
            if let Some(poll) = poll
                && !secflow_market_client::POLL_RANGE.contains(&poll)
            {
                return Err(fail(
                    Exit::Usage,
                    format!("--poll {}: use 1s to 24h", humantime::format_duration(poll)),
                ));
            }
            let mut added = host
                .block_on(client.add(&name, &url, &text))
                .map_err(client_fail)?;
            if let Some(poll) = poll {
                added = client.set_poll(&name, poll).map_err(client_fail)?;
            }
            if json {
                outln!("{}", secflow_term::to_json_pretty(&added)?);
            } else {
                outln!(
                    "added marketplace {} ({}), key {} pinned",
                    added.name,
                    added.url,
                    added.key.key_id
                );
            }
        }
        MarketplaceCommand::List { json } => {
            let list = client.list().map_err(client_fail)?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&list)?);
            } else if list.is_empty() {
                outln!(
                    "no marketplaces; add one with `secflow marketplace add NAME URL --key FILE`"
                );
            } else {
                for m in &list {
                    outln!(
                        "{:<16} {}  key {}  index v{}  polled every {}",
                        m.name,
                        m.url,
                        m.key.key_id,
                        m.index_version.map_or("-".to_string(), |v| v.to_string()),
                        humantime::format_duration(m.poll())
                    );
                }
            }
        }
        MarketplaceCommand::Search { text, from, json } => {
            return search_remote(host, from, text, None, None, None, json);
        }
        MarketplaceCommand::Mirror { dir, from, json } => {
            let name = default_marketplace(&client, from)?;
            let mirrored = host
                .block_on(client.mirror(&name, &dir))
                .map_err(client_fail)?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&mirrored)?);
            } else {
                let expires = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(mirrored.expires_at),
                );
                outln!(
                    "mirrored {} into {}: index v{}, {} packages ({} downloaded, {} removed); the index expires {expires}: refresh the mirror before then",
                    mirrored.marketplace,
                    mirrored.dir.display(),
                    mirrored.index_version,
                    mirrored.packages,
                    mirrored.downloaded,
                    mirrored.removed
                );
            }
        }
        MarketplaceCommand::Publish {
            file,
            to,
            token,
            json,
        } => {
            let name = default_marketplace(&client, to)?;
            let bytes = std::fs::read(&file)
                .map_err(|e| fail(Exit::Usage, format!("cannot read {}: {e}", file.display())))?;
            let published = host
                .block_on(client.publish(&name, bytes, &token))
                .map_err(client_fail)?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&published)?);
            } else {
                print_report(&published);
            }
        }
        MarketplaceCommand::Review {
            target,
            approve,
            reject,
            reason,
            from,
            token,
            json,
        } => {
            let name = default_marketplace(&client, from)?;
            let Some(target) = target else {
                let queue = host
                    .block_on(client.queue(&name, &token))
                    .map_err(client_fail)?;
                if json {
                    outln!("{}", secflow_term::to_json_pretty(&queue)?);
                } else if queue.as_array().is_none_or(Vec::is_empty) {
                    outln!("nothing waits for review in {name}");
                } else {
                    for item in queue.as_array().into_iter().flatten() {
                        let v = &item["version"];
                        outln!(
                            "{}@{} by {}: {}",
                            v["plugin_id"].as_str().unwrap_or(""),
                            v["version"].as_str().unwrap_or(""),
                            v["publisher"].as_str().unwrap_or(""),
                            item["report"]["decision"]["policies"]
                                .as_array()
                                .map(|p| p
                                    .iter()
                                    .filter_map(|x| x.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "))
                                .unwrap_or_default()
                        );
                    }
                }
                return Ok(Exit::Success);
            };
            let Some((id, version)) = target.split_once('@') else {
                return Err(fail(
                    Exit::Usage,
                    "name the version to review as ID@VERSION",
                ));
            };
            if !approve && !reject {
                return Err(fail(
                    Exit::Usage,
                    "say --approve or --reject, with --reason",
                ));
            }
            let decided = host
                .block_on(client.review(
                    &name,
                    id,
                    version,
                    approve,
                    reason.as_deref().unwrap_or(""),
                    &token,
                ))
                .map_err(client_fail)?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&decided)?);
            } else {
                outln!(
                    "{id} {version}: {} by {}",
                    decided["state"].as_str().unwrap_or("?"),
                    decided["decided_by"].as_str().unwrap_or("?")
                );
            }
        }
        MarketplaceCommand::Rate {
            id,
            stars,
            text,
            from,
            json,
        } => {
            let name = match from {
                Some(name) => name,
                None => match client.installed_from(&id).map_err(client_fail)? {
                    Some(name) => name,
                    None => default_marketplace(&client, None)?,
                },
            };
            let rated = host
                .block_on(client.rate(&name, &id, stars, &text))
                .map_err(client_fail)?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&rated)?);
            } else {
                outln!(
                    "rated {id} {stars}/5 on {name} (as host {})",
                    rated["host_id"].as_str().unwrap_or("?")
                );
            }
        }
        MarketplaceCommand::Yank {
            target,
            reason,
            undo,
            from,
            token,
            json,
        } => {
            let (id, version) = id_at_version(&target)?;
            let name = default_marketplace(&client, from)?;
            let row = host
                .block_on(client.yank(&name, id, version, !undo, &reason, &token))
                .map_err(client_fail)?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&row)?);
            } else {
                outln!(
                    "{id} {version}: {} on {name}",
                    if undo { "un-yanked" } else { "yanked" }
                );
            }
        }
        MarketplaceCommand::Revoke {
            target,
            reason,
            from,
            token,
            json,
        } => {
            let (id, version) = id_at_version(&target)?;
            let name = default_marketplace(&client, from)?;
            let row = host
                .block_on(client.revoke(&name, id, version, &reason, &token))
                .map_err(client_fail)?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&row)?);
            } else {
                outln!("{id} {version}: revoked on {name}; clients refuse it from their next poll");
            }
        }
        MarketplaceCommand::Sync { name, json } => {
            let results = match name {
                Some(name) => vec![host.block_on(client.sync(&name))],
                None => host.block_on(client.sync_due(Some(std::time::Duration::ZERO))),
            };
            let mut synced = Vec::new();
            for result in results {
                let s = result.map_err(client_fail)?;
                if !json {
                    outln!(
                        "{}: {}{}",
                        s.marketplace,
                        s.imported,
                        if s.quarantined.is_empty() {
                            String::new()
                        } else {
                            format!("; quarantined {}", s.quarantined.join(", "))
                        }
                    );
                }
                synced.push(s);
            }
            if json {
                outln!("{}", secflow_term::to_json_pretty(&synced)?);
            }
        }
    }
    Ok(Exit::Success)
}

/// `ID@VERSION` split, or a usage error.
fn id_at_version(target: &str) -> anyhow::Result<(&str, &str)> {
    target
        .split_once('@')
        .filter(|(id, version)| !id.is_empty() && !version.is_empty())
        .ok_or_else(|| {
            fail(
                Exit::Usage,
                format!("`{target}`: name the version as ID@VERSION"),
            )
        })
}

/// The outcome of a publish for people: the state, each check, and why it waits.
fn print_report(published: &serde_json::Value) {
    let report = &published["report"];
    outln!(
        "{} {}: {}{}",
        published["plugin_id"].as_str().unwrap_or(""),
        published["version"].as_str().unwrap_or(""),
        published["state"].as_str().unwrap_or("?"),
        if published["unchanged"] == true {
            " (published before; unchanged)"
        } else {
            ""
        }
    );
    for check in report["checks"].as_array().into_iter().flatten() {
        outln!(
            "  {:<16} {:<5} {}",
            check["name"].as_str().unwrap_or(""),
            check["status"].as_str().unwrap_or(""),
            check["summary"].as_str().unwrap_or("")
        );
    }
    if let Some(policies) = report["decision"]["policies"].as_array() {
        let names: Vec<&str> = policies.iter().filter_map(|p| p.as_str()).collect();
        outln!("  decided by: {}", names.join(", "));
    }
}

/// Before a run or scan: apply revocation lists older than the poll interval. A
/// marketplace that cannot be reached is a warning; what was applied before stays.
pub fn poll_revocations(host: &Host) {
    if !Client::has_marketplaces(host) {
        return;
    }
    let client = Client::new(host.clone());
    for result in host.block_on(client.sync_due(None)) {
        match result {
            Ok(s) if !s.quarantined.is_empty() => {
                errln!(
                    "marketplace {}: revoked and quarantined: {}",
                    s.marketplace,
                    s.quarantined.join(", ")
                );
            }
            Ok(_) => {}
            Err(e) => errln!("warning: {e}; the revocations applied before stay in force"),
        }
    }
}
