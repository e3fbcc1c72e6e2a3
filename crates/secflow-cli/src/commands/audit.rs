//! `secflow audit log|verify|checkpoint`, and the helper other commands use to record
//! events. The log is `SECFLOW_HOME/audit.db`; checkpoints are signed with the host key
//! `SECFLOW_HOME/keys/secflow-host.key`, created on first use.

use crate::cli::AuditCommand;
use crate::exit::{Exit, HostResultExt, fail};
use secflow_host::Host;
use secflow_host::types::AuditFilter as Filter;

/// `secflow stats`: the security summary, read from the audit log.
pub fn stats(host: &Host, json: bool) -> anyhow::Result<Exit> {
    let summary = host.block_on(host.audit_summary()).cli()?;
    if json {
        outln!("{}", secflow_term::to_json_pretty(&summary)?);
        return Ok(Exit::Success);
    }
    for (label, value) in [
        ("plugins loaded", summary.plugins_loaded),
        ("plugin runs", summary.plugin_runs),
        ("verification failures", summary.verification_failures),
        ("sandbox violations", summary.sandbox_violations),
        ("policy violations", summary.policy_violations),
        ("audit events", summary.events),
    ] {
        outln!("{label:<22} {value}");
    }
    match &summary.last_event {
        Some(e) => outln!("{:<22} #{} {} {}", "last event", e.seq, e.time, e.action),
        None => outln!("{:<22} none", "last event"),
    }
    Ok(Exit::Success)
}

pub fn run(host: &Host, cmd: AuditCommand) -> anyhow::Result<Exit> {
    host.block_on(async {
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
                    let entries = host.audit_entries(&filter).await.cli()?;
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
                let cp = host.audit_checkpoint().await.cli()?;
                let text = secflow_term::to_json_pretty(&cp)? + "\n";
                match output {
                    Some(path) => {
                        super::write_output(&path, text.as_bytes())?;
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
                match host.audit_verify(checkpoint.as_deref()).await.cli()? {
                    secflow_host::Integrity::Intact(report) => {
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
                    secflow_host::Integrity::Tampered {
                        first_bad_entry,
                        message,
                    } => {
                        if json {
                            outln!(
                                "{}",
                                serde_json::json!({ "intact": false, "first_bad_entry": first_bad_entry, "message": message })
                            );
                        }
                        Err(fail(
                            Exit::Refused,
                            format!("audit log tampered: {message}"),
                        ))
                    }
                }
            }
        }
    })
}
