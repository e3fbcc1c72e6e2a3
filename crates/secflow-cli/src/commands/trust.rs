//! `secflow trust ...`, `secflow plugin sign` and `secflow plugin verify`.

use crate::cli::TrustCommand;
use crate::exit::{Exit, HostResultExt};
use secflow_host::types::SignatureStatus;
use secflow_host::{Host, TrustChange, Verdict};
use std::path::Path;

pub fn run(host: &Host, cmd: TrustCommand) -> anyhow::Result<Exit> {
    let change = match cmd {
        TrustCommand::List { json } => {
            let store = host.trust_store().cli()?;
            if json {
                outln!("{}", secflow_term::to_json_pretty(&store)?);
            } else {
                for k in &store.keys {
                    let retired = k
                        .retired_at
                        .map(|t| format!(" (retired at {t})"))
                        .unwrap_or_default();
                    outln!(
                        "{:<34} {:<12} {:<12} {}{retired}",
                        k.key_id,
                        k.name,
                        k.role.to_string(),
                        k.scopes.join(",")
                    );
                }
                for t in &store.thresholds {
                    outln!("threshold {} of n for {}", t.required, t.scope);
                }
                for r in &store.revocations {
                    outln!("revoked {:?} from {}: {}", r.item, r.from, r.reason);
                }
            }
            return Ok(Exit::Success);
        }
        TrustCommand::Add { key, role, scopes } => TrustChange::Add { key, role, scopes },
        TrustCommand::Remove { key } => TrustChange::Remove { key },
        TrustCommand::Threshold { scope, required } => TrustChange::Threshold { scope, required },
        TrustCommand::Rotate { from, to } => TrustChange::Rotate { from, to },
        TrustCommand::Revoke {
            item,
            sign_with,
            from,
            reason,
            output,
        } => TrustChange::Revoke {
            item,
            sign_with,
            from,
            reason,
            output,
        },
        TrustCommand::Import { file } => TrustChange::Import { file },
    };
    let what = host.block_on(host.change_trust(change)).cli()?;
    outln!("{what}");
    Ok(Exit::Success)
}

pub fn sign(
    host: &Host,
    file: &Path,
    key: &str,
    expires_in_days: Option<u64>,
) -> anyhow::Result<Exit> {
    let key_id = host.sign_package(file, key, expires_in_days).cli()?;
    outln!("Signed {} with {key} ({key_id})", file.display());
    Ok(Exit::Success)
}

pub(crate) fn describe(status: &SignatureStatus) -> String {
    match status {
        SignatureStatus::Valid => "valid".into(),
        SignatureStatus::Untrusted => "untrusted (key not in the trust store)".into(),
        SignatureStatus::BadSignature => "invalid (does not verify: tampered?)".into(),
        SignatureStatus::WrongPackage(why) => format!("invalid ({why})"),
        SignatureStatus::Expired { expired_at } => format!("expired at {expired_at}"),
        SignatureStatus::RevokedKey { from } => format!("revoked (key revoked from {from})"),
        SignatureStatus::RetiredKey { at } => format!("retired (key rotated out at {at})"),
        SignatureStatus::OutOfScope { scopes } => {
            format!("out of scope (key may sign {})", scopes.join(", "))
        }
        SignatureStatus::WrongRole(role) => {
            format!("wrong role ({role} keys do not sign packages)")
        }
        SignatureStatus::NotYetValid { issued_at } => format!("issued in the future ({issued_at})"),
    }
}

pub fn verify(host: &Host, file: &Path, json: bool, allow_rollback: bool) -> anyhow::Result<Exit> {
    let v = match host
        .block_on(host.verify_package_file(file, allow_rollback))
        .cli()?
    {
        Verdict::Judged(v) => v,
        Verdict::Unreadable(e) => {
            if json {
                outln!("{}", serde_json::json!({"verdict": "refused", "error": e}));
            } else {
                errln!("refused: {e}");
            }
            return Ok(Exit::Refused);
        }
    };
    let capabilities = v.package.as_ref().map(|p| &p.manifest.capabilities);
    if json {
        let verdict = if v.accepted() { "accepted" } else { "refused" };
        outln!(
            "{}",
            secflow_term::to_json_pretty(&serde_json::json!({
                "verdict": verdict, "verification": v, "capabilities": capabilities,
            }))?
        );
    } else {
        outln!("package sha256 {}", v.package_sha256);
        for s in &v.signatures {
            let who = s.key_name.clone().unwrap_or_else(|| "unknown".into());
            let role = s.role.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
            outln!(
                "  signature {} ({who}, {role}): {}",
                s.key_id,
                describe(&s.status)
            );
        }
        outln!("threshold: {} valid of {} required", v.valid, v.required);
        if let Some(caps) = capabilities {
            if caps.is_empty() {
                outln!("capabilities: none");
            }
            for fs in &caps.filesystem {
                outln!(
                    "capability filesystem {} ({:?}): {}",
                    fs.path,
                    fs.access,
                    fs.reason
                );
            }
            for net in &caps.network {
                outln!("capability network {net}: {}", net.reason);
            }
            if let Some(kv) = &caps.kv {
                outln!("capability kv: {}", kv.reason);
            }
        }
        if v.rollback_override {
            outln!("note: accepted an older version by explicit override (recorded)");
        }
        if v.accepted() {
            outln!(
                "verdict: accepted ({} {})",
                v.plugin_id.as_deref().unwrap_or("?"),
                v.version.as_deref().unwrap_or("?")
            );
        } else {
            for r in &v.refusals {
                outln!("refused: {r}");
            }
            outln!("verdict: refused");
        }
    }
    Ok(if v.accepted() {
        Exit::Success
    } else {
        Exit::Refused
    })
}
