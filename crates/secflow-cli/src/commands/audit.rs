//! `secflow audit log|verify|checkpoint`, and the helper other commands use to record
//! events. The log is `SECFLOW_HOME/audit.db`; checkpoints are signed with the host key
//! `SECFLOW_HOME/keys/secflow-host.key`, created on first use.

use crate::cli::AuditCommand;
use crate::exit::{Exit, fail};
use crate::home::Home;
use secflow_audit::{AuditError, AuditLog, Checkpoint, Event, Filter};

/// Name of the host's own key pair in the key directory.
const HOST_KEY: &str = "secflow-host";

fn host_key(home: &Home) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let keys = secflow_trust::KeyDir::new(home.keys());
    if let Ok(key) = keys.signing_key(HOST_KEY) {
        return Ok(key);
    }
    keys.generate(HOST_KEY)
        .and_then(|_| keys.signing_key(HOST_KEY))
        .map_err(|e| fail(Exit::Usage, format!("cannot create the host key: {e}")))
}

/// The compile cache's key: derived from the host key with its own label, so it says
/// nothing about the key and stays outside the cache directory.
pub fn cache_key(home: &Home) -> anyhow::Result<secflow_runtime::CacheKey> {
    use sha2::{Digest, Sha256};
    let key = host_key(home)?;
    let mut h = Sha256::new();
    h.update(b"secflow compile-cache key v1\0");
    h.update(key.to_bytes());
    Ok(secflow_runtime::CacheKey(h.finalize().into()))
}

async fn open(home: &Home) -> anyhow::Result<AuditLog> {
    std::fs::create_dir_all(&home.root)?;
    AuditLog::open(&home.audit_db(), host_key(home)?)
        .await
        .map_err(|e| {
            fail(
                Exit::Usage,
                format!("cannot open {}: {e}", home.audit_db().display()),
            )
        })
}

use super::block_on;

/// Appends events to the audit log in one durable commit.
pub fn record(home: &Home, events: Vec<Event>) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    block_on(async {
        let log = open(home).await?;
        log.append_batch(events)
            .await
            .map_err(|e| anyhow::anyhow!("cannot write the audit log: {e}"))?;
        anyhow::Ok(())
    })?
}

/// `secflow stats`: the security summary, read from the audit log.
pub fn stats(home: &Home, json: bool) -> anyhow::Result<Exit> {
    block_on(async {
        let log = open(home).await?;
        let (counts, last) = log.summary().await?;
        let events: u64 = counts.iter().map(|(_, n)| n).sum();
        let summary = serde_json::json!({
            "plugins_loaded": log.distinct_plugins("plugin.invoke").await?,
            "plugin_runs": log.count("plugin.invoke", None).await?,
            "verification_failures": log.count("signature.verify", Some("refused")).await?,
            "sandbox_violations": log.count("sandbox.violation", None).await?,
            "policy_violations": log.count("policy.decision", Some("deny")).await?,
            "events": events,
            "events_by_action": counts.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "last_event": last.as_ref().map(|e| serde_json::json!({
                "seq": e.seq, "time": e.time, "action": e.event.action,
            })),
        });
        if json {
            outln!("{}", secflow_term::to_json_pretty(&summary)?);
        } else {
            for (label, key) in [
                ("plugins loaded", "plugins_loaded"),
                ("plugin runs", "plugin_runs"),
                ("verification failures", "verification_failures"),
                ("sandbox violations", "sandbox_violations"),
                ("policy violations", "policy_violations"),
                ("audit events", "events"),
            ] {
                outln!("{label:<22} {}", summary[key]);
            }
            match &last {
                Some(e) => outln!(
                    "{:<22} #{} {} {}",
                    "last event",
                    e.seq,
                    e.time,
                    e.event.action
                ),
                None => outln!("{:<22} none", "last event"),
            }
        }
        anyhow::Ok(Exit::Success)
    })?
}

pub fn run(home: &Home, cmd: AuditCommand) -> anyhow::Result<Exit> {
    block_on(async {
        let log = open(home).await?;
        match cmd {
            AuditCommand::Log {
                plugin,
                since,
                follow,
                json,
            } => {
                let mut filter = Filter {
                    plugin,
                    since,
                    ..Filter::default()
                };
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                loop {
                    let entries = log.entries(&filter).await?;
                    for e in &entries {
                        let line = if json {
                            secflow_term::to_json(e)?
                        } else {
                            let plugin = e
                                .event
                                .plugin
                                .as_ref()
                                .map(|p| format!(" {}@{}", p.id, p.version))
                                .unwrap_or_default();
                            let decision = e
                                .event
                                .decision
                                .as_deref()
                                .map(|d| format!(" [{d}]"))
                                .unwrap_or_default();
                            format!(
                                "#{:<6} {}  {:<20} {}{}{}{}",
                                e.seq,
                                e.time,
                                e.event.action,
                                e.event.actor,
                                plugin,
                                decision,
                                if e.event.reason.is_empty() {
                                    String::new()
                                } else {
                                    format!(
                                        ": {}",
                                        secflow_scan::output::table::safe(&e.event.reason)
                                    )
                                }
                            )
                        };
                        // A closed pipe (`| head`) ends the listing quietly.
                        if writeln!(stdout, "{line}")
                            .and_then(|_| stdout.flush())
                            .is_err()
                        {
                            return Ok(Exit::Success);
                        }
                        filter.after_seq = Some(e.seq);
                    }
                    if !follow {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Ok(Exit::Success)
            }
            AuditCommand::Checkpoint { output } => {
                let cp = log.checkpoint().await?;
                let text = secflow_term::to_json_pretty(&cp)? + "\n";
                match output {
                    Some(path) => {
                        super::write_atomic(&path, text.as_bytes())?;
                        errln!(
                            "checkpoint of {} entries written to {}; keep a copy off this host",
                            cp.tree_size,
                            path.display()
                        );
                    }
                    None => out!("{text}"),
                }
                Ok(Exit::Success)
            }
            AuditCommand::Verify { checkpoint, json } => {
                let external = checkpoint
                    .as_deref()
                    .map(Checkpoint::read)
                    .transpose()
                    .map_err(|e| fail(Exit::Usage, e.to_string()))?;
                match log.verify(&log.public_key(), external.as_ref()).await {
                    Ok(report) => {
                        if json {
                            outln!("{}", secflow_term::to_json_pretty(&report)?);
                        } else {
                            outln!(
                                "audit log intact: {} entries, root {}, {} stored checkpoint(s) verified{}",
                                report.entries,
                                report.root,
                                report.checkpoints,
                                if report.external_checkpoint {
                                    ", external checkpoint matched"
                                } else {
                                    ""
                                }
                            );
                        }
                        Ok(Exit::Success)
                    }
                    Err(AuditError::Tampered { seq, message }) => {
                        if json {
                            outln!(
                                "{}",
                                serde_json::json!({ "intact": false, "first_bad_entry": seq, "message": message })
                            );
                        }
                        Err(fail(
                            Exit::Refused,
                            format!("audit log tampered: {message}"),
                        ))
                    }
                    Err(e) => Err(fail(Exit::Usage, e.to_string())),
                }
            }
        }
    })?
}
