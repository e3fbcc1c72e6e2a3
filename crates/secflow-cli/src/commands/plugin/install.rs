//! `secflow plugin install|upgrade FILE...`: the host's admission with the CLI's approver
//! (a prompt on a terminal, `--yes` or `--grant` in scripts).

use crate::cli::InstallArgs;
use crate::exit::{Exit, HostResultExt, fail};
use secflow_host::{AdmitOutcome, Answer, ApprovalRequest, Approver, Host, InstallMode, Purpose};
use std::io::IsTerminal;
use std::path::PathBuf;

/// The CLI's approver: shows each request on stderr; `--grant` or `--yes` approve in
/// advance; otherwise a person is asked on the terminal, when there is one.
pub struct CliApprover {
    /// `--grant` or `--yes`, when given.
    pub standing: Option<&'static str>,
    /// Whether a person may be asked (never in `sync`).
    pub interactive: bool,
}

impl CliApprover {
    pub fn new(yes: bool, grants: bool, may_prompt: bool) -> CliApprover {
        CliApprover {
            standing: if grants {
                Some("--grant")
            } else if yes {
                Some("--yes")
            } else {
                None
            },
            interactive: may_prompt
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal(),
        }
    }
}

impl Approver for CliApprover {
    fn show(&self, r: &ApprovalRequest<'_>) {
        let m = r.manifest;
        let signed = if r.signers.is_empty() {
            "unsigned (developer mode)".to_string()
        } else {
            format!(
                "signed by {}",
                r.signers
                    .iter()
                    .map(|s| format!("{} ({})", s.name.as_deref().unwrap_or(&s.key_id), s.role))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        errln!("{} {} ({}), {signed}", m.id, m.version, m.kind);
        errln!("  {}", m.description);
        if let Some(p) = r.installed {
            errln!("  installed: {} ({})", p.version, p.state());
        }
        if r.asks.is_empty() {
            errln!("  asks for no capabilities");
        } else {
            errln!("  asks for:");
            for a in r.asks {
                let new = r.increase.is_some_and(|inc| inc.contains(&a.label));
                errln!(
                    "    {}{:<40} {}",
                    if new { "+ " } else { "  " },
                    a.label,
                    a.reason
                );
            }
        }
        if let Some(inc) = r.increase {
            if inc.is_empty() {
                errln!("  nothing beyond the current grant");
            } else {
                errln!("  new since the installed version: {}", inc.join(", "));
            }
        }
    }

    fn standing(&self) -> Option<String> {
        self.standing.map(str::to_string)
    }

    fn ask(&self, r: &ApprovalRequest<'_>) -> Answer {
        if !self.interactive {
            return Answer::CannotAsk;
        }
        let question = match r.purpose {
            Purpose::Upgrade => "Grant the new capabilities and upgrade?",
            Purpose::Enable => "Grant them and enable?",
            Purpose::Install => "Grant these capabilities and install?",
        };
        match confirm(question) {
            Ok(true) => Answer::Approved {
                via: "prompt".into(),
            },
            Ok(false) => Answer::Declined,
            // The terminal went away: nobody could answer.
            Err(_) => Answer::CannotAsk,
        }
    }
}

/// Asks a yes/no question on the terminal; anything but yes is no.
fn confirm(question: &str) -> std::io::Result<bool> {
    use std::io::Write;
    err!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// `GUEST=HOST` pairs.
pub fn parse_mounts(pairs: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    pairs
        .iter()
        .map(|pair| {
            let (guest, host) = pair
                .split_once('=')
                .ok_or_else(|| fail(Exit::Usage, format!("--mount `{pair}` is not GUEST=HOST")))?;
            Ok((guest.to_string(), PathBuf::from(host)))
        })
        .collect()
}

/// An argument that names no file but reads like `ID` or `ID@RANGE`: installed from a
/// marketplace.
fn remote_spec(arg: &std::path::Path) -> Option<&str> {
    let text = arg.to_str()?;
    let id = text.split('@').next()?;
    let plausible = !arg.exists()
        && !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    plausible.then_some(text)
}

pub fn run(host: &Host, args: InstallArgs, mode: InstallMode) -> anyhow::Result<Exit> {
    if mode != InstallMode::Sync && args.files.iter().all(|f| remote_spec(f).is_some()) {
        return install_remote(host, &args, mode);
    }
    let mut packages = Vec::new();
    for file in &args.files {
        let bytes = std::fs::read(file)
            .map_err(|e| fail(Exit::Usage, format!("cannot read {}: {e}", file.display())))?;
        packages.push(secflow_host::Package {
            source: file.display().to_string(),
            bytes,
            from_marketplace: false,
        });
    }
    let request = secflow_host::InstallRequest {
        packages,
        mode,
        select: args.grants.clone(),
        mounts: parse_mounts(&args.mounts)?,
        dev: args.dev,
        allow_rollback: args.allow_rollback,
    };
    let approver = CliApprover::new(args.yes, !args.grants.is_empty(), mode != InstallMode::Sync);
    let admitted = host.block_on(host.install(request, &approver)).cli()?;
    for a in &admitted {
        match (&a.outcome, a.held_for_approval) {
            (AdmitOutcome::Unchanged, _) => errln!("{}", a.message),
            (AdmitOutcome::NotNewer { .. }, _) => errln!("note: {}", a.message),
            (AdmitOutcome::Upgraded { .. }, true) if !args.json => {
                outln!("{}: secflow plugin enable {}", a.message, a.id)
            }
            _ if !args.json => outln!("{}", a.message),
            _ => {}
        }
    }
    if args.json {
        outln!("{}", secflow_term::to_json_pretty(&admitted)?);
    }
    Ok(Exit::Success)
}

/// `secflow plugin install ID[@RANGE]... [--from NAME]`: each resolved in the marketplace's
/// signed index, downloaded, checked against it, countersignature required, then admitted
/// like any package, and a receipt sent.
fn install_remote(host: &Host, args: &InstallArgs, mode: InstallMode) -> anyhow::Result<Exit> {
    use super::super::marketplace::{client_fail, default_marketplace};
    if args.dev || !args.mounts.is_empty() {
        return Err(fail(
            Exit::Usage,
            "--dev and --mount apply to package files, not to installs from a marketplace",
        ));
    }
    let client = secflow_market_client::Client::new(host.clone());
    let name = default_marketplace(&client, args.from.clone())?;
    let approver = CliApprover::new(args.yes, !args.grants.is_empty(), true);
    let mut done = Vec::new();
    for spec in &args.files {
        let spec = remote_spec(spec).expect("checked by the caller");
        // Said out loud: a missing file of that name would otherwise pass unnoticed.
        errln!("no file `{spec}`: installing it from marketplace {name}");
        let installed = host
            .block_on(client.install(&name, spec, mode, &args.grants, &approver))
            .map_err(client_fail)?;
        if !args.json {
            for a in &installed.admitted {
                outln!("{}", a.message);
            }
            if let Err(e) = &installed.receipt {
                errln!("note: the install receipt was not counted: {e}");
            }
        }
        done.push(installed);
    }
    if args.json {
        outln!("{}", secflow_term::to_json_pretty(&done)?);
    }
    Ok(Exit::Success)
}

/// `secflow plugin update [ID]`: plugins installed from a marketplace upgraded to the
/// newest version it lists, by the rules of `plugin upgrade`.
pub fn update(host: &Host, id: Option<&str>, yes: bool, json: bool) -> anyhow::Result<Exit> {
    use super::super::marketplace::client_fail;
    let client = secflow_market_client::Client::new(host.clone());
    let approver = CliApprover::new(yes, false, true);
    let updated = host
        .block_on(client.update(id, &approver))
        .map_err(client_fail)?;
    if json {
        outln!("{}", secflow_term::to_json_pretty(&updated)?);
    } else if updated.is_empty() {
        outln!("no plugins were installed from a marketplace");
    } else {
        for u in &updated {
            match &u.upgraded_to {
                None => outln!("{} {}: the newest in {}", u.id, u.installed, u.marketplace),
                Some(_) => {
                    for a in &u.admitted {
                        outln!("{}", a.message);
                    }
                }
            }
        }
    }
    Ok(Exit::Success)
}
