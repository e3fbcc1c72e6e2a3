//! `secflow trust ...`, `secflow plugin sign` and `secflow plugin verify`.

use crate::cli::TrustCommand;
use crate::exit::{Exit, fail};
use crate::home::Home;
use secflow_package::PackageLimits;
use secflow_trust::lists::{Signed, sign_revocations, sign_rotation};
use secflow_trust::{
    KeyDir, PublicKeyFile, Revocation, RevokedItem, SignatureStatus, TrustError, TrustStore,
};
use std::path::Path;

fn usage(e: TrustError) -> anyhow::Error {
    fail(Exit::Usage, e.to_string())
}

fn load_store(home: &Home) -> anyhow::Result<TrustStore> {
    TrustStore::load(&home.trust_store()).map_err(usage)
}

/// A key given on the command line: a public key file path, or a local key name.
fn resolve_public(home: &Home, key: &str) -> anyhow::Result<PublicKeyFile> {
    let path = Path::new(key);
    if path.is_file() {
        let text = std::fs::read_to_string(path)?;
        return Ok(PublicKeyFile::parse(&text).map_err(usage)?.0);
    }
    KeyDir::new(home.keys()).public(key).map_err(usage)
}

/// An audit event for a change of the trust store.
fn trust_event(action: &str, reason: String) -> secflow_audit::Event {
    secflow_audit::Event {
        actor: "cli".into(),
        action: format!("trust.{action}"),
        plugin: None,
        decision: Some("ok".into()),
        reason,
        details: serde_json::Value::Null,
    }
}

pub fn run(home: &Home, cmd: TrustCommand) -> anyhow::Result<Exit> {
    let mut store = load_store(home)?;
    let now = store.observe_time(secflow_trust::now());
    let keys = KeyDir::new(home.keys());
    let mut audit: Option<secflow_audit::Event> = None;
    match cmd {
        TrustCommand::Add { key, role, scopes } => {
            let public = resolve_public(home, &key)?;
            store
                .add_key(&public, role, scopes.clone(), now)
                .map_err(usage)?;
            let what = format!(
                "Trusted {} ({}) as {role} for {}",
                public.key_id,
                public.name,
                scopes.join(", ")
            );
            outln!("{what}");
            audit = Some(trust_event("add", what));
        }
        TrustCommand::Remove { key } => {
            if !store.remove_key(&key) {
                return Err(fail(
                    Exit::Usage,
                    format!("no trusted key `{key}`; see `secflow trust list`"),
                ));
            }
            outln!("Removed {key}");
            audit = Some(trust_event("remove", format!("Removed {key}")));
        }
        TrustCommand::List { json } => {
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
        }
        TrustCommand::Threshold { scope, required } => {
            store.set_threshold(&scope, required).map_err(usage)?;
            let what = format!("Plugins matching {scope} now need {required} trusted signature(s)");
            outln!("{what}");
            audit = Some(trust_event("threshold", what));
        }
        TrustCommand::Rotate { from, to } => {
            let old = keys.signing_key(&from).map_err(usage)?;
            let new_public = keys.public(&to).map_err(usage)?;
            let signed = sign_rotation(&old, &new_public, now);
            let id = store
                .rotate(&signed)
                .map_err(|e| fail(Exit::Refused, e.to_string()))?;
            let what = format!("Rotated {from} -> {to} ({id}); {from} is retired");
            outln!("{what}");
            audit = Some(trust_event("rotate", what));
        }
        TrustCommand::Revoke {
            item,
            sign_with,
            from,
            reason,
            output,
        } => {
            let authority = keys.signing_key(&sign_with).map_err(usage)?;
            let item = if store.key(&item).is_some() || item.len() == 32 {
                RevokedItem::KeyId(item)
            } else if item.len() == 64 && item.bytes().all(|b| b.is_ascii_hexdigit()) {
                RevokedItem::PackageSha256(item.to_ascii_lowercase())
            } else {
                return Err(fail(
                    Exit::Usage,
                    "give a 32-hex-digit key id or a 64-hex-digit package sha256",
                ));
            };
            let signed = sign_revocations(
                &authority,
                vec![Revocation {
                    item,
                    from: from.unwrap_or(now),
                    reason,
                }],
                now,
            );
            if let Some(output) = output {
                super::write_atomic(&output, secflow_term::to_json_pretty(&signed)?.as_bytes())?;
            }
            store
                .import_revocations(&signed)
                .map_err(|e| fail(Exit::Refused, e.to_string()))?;
            outln!("Revocation recorded");
            audit = Some(trust_event("revoke", "Revocation recorded".into()));
        }
        TrustCommand::Import { file } => {
            let signed: Signed = serde_json::from_slice(&std::fs::read(&file)?).map_err(|e| {
                fail(
                    Exit::Usage,
                    format!("{}: not a signed SecFlow document: {e}", file.display()),
                )
            })?;
            let refused = |e: TrustError| fail(Exit::Refused, e.to_string());
            if signed.body.contains(secflow_trust::lists::ROTATION_TYPE) {
                let id = store.rotate(&signed).map_err(refused)?;
                let what = format!("Rotation imported: {id} replaces {}", signed.key_id);
                outln!("{what}");
                audit = Some(trust_event("import", what));
            } else {
                let n = store.import_revocations(&signed).map_err(refused)?;
                let what = format!("Imported {n} new revocation(s)");
                outln!("{what}");
                audit = Some(trust_event("import", what));
            }
        }
    }
    store.save(&home.trust_store()).map_err(usage)?;
    if let Some(event) = audit {
        super::audit_record(home, vec![event])?;
    }
    Ok(Exit::Success)
}

pub fn sign(
    home: &Home,
    file: &Path,
    key: &str,
    expires_in_days: Option<u64>,
) -> anyhow::Result<Exit> {
    let signing = KeyDir::new(home.keys()).signing_key(key).map_err(usage)?;
    let bytes = std::fs::read(file)
        .map_err(|e| fail(Exit::Usage, format!("cannot read {}: {e}", file.display())))?;
    let now = secflow_trust::now();
    let expires = expires_in_days.map(|d| now + d * 86_400);
    let signed =
        secflow_trust::add_signature(&bytes, &signing, now, expires, &PackageLimits::default())
            .map_err(usage)?;
    super::write_atomic(file, &signed)?;
    outln!(
        "Signed {} with {key} ({})",
        file.display(),
        secflow_trust::key_id(&signing.verifying_key())
    );
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

pub fn verify(home: &Home, file: &Path, json: bool, allow_rollback: bool) -> anyhow::Result<Exit> {
    let mut store = load_store(home)?;
    let bytes = std::fs::read(file)
        .map_err(|e| fail(Exit::Usage, format!("cannot read {}: {e}", file.display())))?;
    let options = secflow_trust::VerifyOptions { allow_rollback };
    let result = secflow_trust::verify(
        &bytes,
        &mut store,
        secflow_trust::now(),
        &PackageLimits::default(),
        options,
    );
    // The clock high-water mark and trusted versions persist even when refused.
    store.save(&home.trust_store()).map_err(usage)?;
    let package_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let (plugin, decision, reason) = match &result {
        Ok(v) => (
            v.plugin_id.as_ref().map(|id| secflow_audit::PluginRef {
                id: id.clone(),
                version: v.version.clone().unwrap_or_default(),
                digest: v.package_sha256.clone(),
            }),
            if v.accepted() { "accepted" } else { "refused" },
            v.refusals
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => (None, "refused", e.to_string()),
    };
    super::audit_record(
        home,
        vec![secflow_audit::Event {
            actor: "cli".into(),
            action: "signature.verify".into(),
            plugin,
            decision: Some(decision.into()),
            reason,
            details: serde_json::json!({ "file": file.display().to_string(), "package_sha256": package_sha256 }),
        }],
    )?;
    let v = match result {
        Ok(v) => v,
        Err(e) => {
            if json {
                outln!(
                    "{}",
                    serde_json::json!({"verdict": "refused", "error": e.to_string()})
                );
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
