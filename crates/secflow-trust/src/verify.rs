//! Verifying a package against the trust store, on raw bytes, before the payload is parsed.

use crate::TrustError;
use crate::signature::{STATEMENT_TYPE, SignatureBlock, Statement, capabilities_digest};
use crate::store::{RevokedItem, Role, SigOutcome, TrustStore, scope_matches};
use secflow_package::{Envelope, Package, PackageLimits, read_payload};
use serde::Serialize;

/// How far in the future a signature's issue time may be (clock skew between machines).
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// The state of one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "detail")]
pub enum SignatureStatus {
    Valid,
    /// No trusted key has this id.
    Untrusted,
    /// The signature does not verify against the key (tampered bytes or statement).
    BadSignature,
    /// The statement is for a different package (digest mismatch) or is malformed.
    WrongPackage(String),
    Expired {
        expired_at: u64,
    },
    /// The key was revoked at or before the signature's issue time.
    RevokedKey {
        from: u64,
    },
    /// The key was retired by rotation before it made this signature.
    RetiredKey {
        at: u64,
    },
    /// The key may not sign this plugin id.
    OutOfScope {
        scopes: Vec<String>,
    },
    /// The key's role does not sign packages.
    WrongRole(String),
    /// Issued in the future beyond the allowed skew.
    NotYetValid {
        issued_at: u64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct SignatureCheck {
    pub key_id: String,
    pub key_name: Option<String>,
    pub role: Option<Role>,
    pub issued_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub status: SignatureStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub package_sha256: String,
    pub plugin_id: Option<String>,
    pub version: Option<String>,
    pub signatures: Vec<SignatureCheck>,
    pub required: usize,
    pub valid: usize,
    /// Why the package is refused; empty when accepted.
    pub refusals: Vec<String>,
    /// The trusted time the decision used.
    pub time: u64,
    /// Whether accepting it needed an explicit rollback override.
    pub rollback_override: bool,
    #[serde(skip)]
    pub package: Option<Package>,
}

impl Verification {
    pub fn accepted(&self) -> bool {
        self.refusals.is_empty()
    }
}

/// Options for [`verify`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Accept a version lower than the highest already trusted (recorded by the caller).
    pub allow_rollback: bool,
}

/// Verifies `bytes` against `store` at `now` (seconds since the epoch). Observes `now` in the
/// store's monotonic clock and, when accepted, records the version as trusted: save the store
/// afterwards.
pub fn verify(
    bytes: &[u8],
    store: &mut TrustStore,
    now: u64,
    limits: &PackageLimits,
    options: VerifyOptions,
) -> Result<Verification, TrustError> {
    let time = store.observe_time(now);
    let envelope = Envelope::split(bytes, limits)?;
    let digest = envelope.digest();
    let block = SignatureBlock::parse(envelope.signatures)?;
    let mut checks = Vec::new();
    let mut statements: Vec<Statement> = Vec::new();
    let mut valid_keys: Vec<String> = Vec::new();
    for entry in &block.signatures {
        let (status, statement) = check_entry(store, entry, &digest, time);
        let key = store.key(&entry.key_id);
        checks.push(SignatureCheck {
            key_id: entry.key_id.clone(),
            key_name: key.map(|k| k.name.clone()),
            role: key.map(|k| k.role),
            issued_at: statement.as_ref().map(|s| s.issued_at),
            expires_at: statement.as_ref().and_then(|s| s.expires_at),
            status: status.clone(),
        });
        if let (SignatureStatus::Valid, Some(statement)) = (status, statement)
            && !valid_keys.contains(&entry.key_id)
        {
            valid_keys.push(entry.key_id.clone());
            statements.push(statement);
        }
    }

    let mut refusals = Vec::new();
    // Every valid statement vouches for the same plugin id; use it for scope and threshold.
    let plugin_id = statements.first().map(|s| s.plugin_id.clone());
    if statements
        .iter()
        .any(|s| Some(&s.plugin_id) != plugin_id.as_ref())
    {
        refusals.push("valid signatures disagree about the plugin id".to_string());
    }
    let required = plugin_id
        .as_deref()
        .map_or(1, |id| store.required_signatures(id));
    if block.signatures.is_empty() {
        refusals.push("the package is unsigned".to_string());
    } else if valid_keys.len() < required {
        refusals.push(format!(
            "{} valid trusted signature(s); {required} required",
            valid_keys.len()
        ));
    }
    if let Some(from) = store.revoked_from(&RevokedItem::PackageSha256(digest.clone()))
        && from <= time
    {
        refusals.push(format!("the package digest {digest} is revoked"));
    }

    let mut verification = Verification {
        package_sha256: digest,
        plugin_id: plugin_id.clone(),
        version: statements.first().map(|s| s.version.clone()),
        signatures: checks,
        required,
        valid: valid_keys.len(),
        refusals,
        time,
        rollback_override: false,
        package: None,
    };
    if !verification.refusals.is_empty() {
        return Ok(verification);
    }

    // Only now, with enough trusted signatures over these exact bytes, parse the payload.
    let package = read_payload(envelope.payload, limits)?;
    let m = &package.manifest;
    let caps = capabilities_digest(&m.capabilities);
    for s in &statements {
        if s.plugin_id != m.id.as_str()
            || s.version != m.version.to_string()
            || s.plugin_kind != m.kind.as_str()
            || s.capabilities_sha256 != caps
        {
            verification.refusals.push(format!(
                "signature by {} describes {} {} ({}) but the manifest says {} {} ({}) or declares other capabilities",
                s.key_id, s.plugin_id, s.version, s.plugin_kind, m.id, m.version, m.kind
            ));
        }
    }
    if let Some(trusted) = store.trusted_versions.get(m.id.as_str())
        && let Ok(trusted) = semver::Version::parse(trusted)
        && m.version < trusted
    {
        if options.allow_rollback {
            verification.rollback_override = true;
            store
                .rollback_overrides
                .push(crate::store::RollbackOverride {
                    plugin_id: m.id.to_string(),
                    from_version: trusted.to_string(),
                    to_version: m.version.to_string(),
                    at: time,
                });
        } else {
            verification.refusals.push(format!(
                "rollback: version {} is older than {trusted}, already trusted for {}; pass --allow-rollback to accept it (recorded)",
                m.version, m.id
            ));
        }
    }
    if verification.refusals.is_empty() {
        let newer = store
            .trusted_versions
            .get(m.id.as_str())
            .and_then(|v| semver::Version::parse(v).ok())
            .is_none_or(|v| m.version > v);
        if newer {
            store
                .trusted_versions
                .insert(m.id.to_string(), m.version.to_string());
        }
        verification.package = Some(package);
    }
    Ok(verification)
}

fn check_entry(
    store: &TrustStore,
    entry: &crate::signature::SignatureEntry,
    digest: &str,
    time: u64,
) -> (SignatureStatus, Option<Statement>) {
    let Some(key) = store.key(&entry.key_id) else {
        return (SignatureStatus::Untrusted, None);
    };
    match key.check_signature(entry.statement.as_bytes(), &entry.signature) {
        Err(_) => return (SignatureStatus::Untrusted, None),
        Ok(SigOutcome::Malformed | SigOutcome::Invalid) => {
            return (SignatureStatus::BadSignature, None);
        }
        Ok(SigOutcome::Verified) => {}
    }
    // The statement is authentic from here on; now it may be parsed.
    let statement: Statement = match serde_json::from_str(&entry.statement) {
        Ok(s) => s,
        Err(e) => {
            return (
                SignatureStatus::WrongPackage(format!("malformed statement: {e}")),
                None,
            );
        }
    };
    let status = if statement.kind != STATEMENT_TYPE || statement.key_id != entry.key_id {
        SignatureStatus::WrongPackage("statement type or key id mismatch".into())
    } else if statement.package_sha256 != digest {
        SignatureStatus::WrongPackage("signed for different package bytes".into())
    } else if key.role == Role::RevocationAuthority {
        SignatureStatus::WrongRole(key.role.to_string())
    } else if let Some(from) = store.revoked_from(&RevokedItem::KeyId(key.key_id.clone()))
        && (from <= statement.issued_at || from == 0)
    {
        SignatureStatus::RevokedKey { from }
    } else if let Some(at) = key.retired_at
        && at <= statement.issued_at
    {
        SignatureStatus::RetiredKey { at }
    } else if statement.issued_at > time + MAX_CLOCK_SKEW_SECS {
        SignatureStatus::NotYetValid {
            issued_at: statement.issued_at,
        }
    } else if let Some(expired_at) = statement.expires_at
        && expired_at <= time
    {
        SignatureStatus::Expired { expired_at }
    } else if !key
        .scopes
        .iter()
        .any(|s| scope_matches(s, &statement.plugin_id))
    {
        SignatureStatus::OutOfScope {
            scopes: key.scopes.clone(),
        }
    } else {
        SignatureStatus::Valid
    };
    (status, Some(statement))
}
