//! The trust store (keys, roles, thresholds, rotations, revocations), package signing and
//! package verification. Every change of the store is recorded.

use crate::{Host, HostError, Result};
use secflow_audit::{Action as AuditAction, Event, PluginRef};
use secflow_package::PackageLimits;
use secflow_trust::lists::{Signed, sign_revocations, sign_rotation};
use secflow_trust::{
    KeyDir, PublicKeyFile, Revocation, RevokedItem, Role, TrustStore, Verification,
};
use std::path::{Path, PathBuf};

/// A change to the trust store.
#[derive(Debug, Clone)]
pub enum TrustChange {
    /// Trust a key (a public key file, or a local key's name) for a role and scopes.
    Add {
        key: String,
        role: Role,
        scopes: Vec<String>,
    },
    /// Trust a key given as the text of its public key file (an upload: never a path or a
    /// local key name, which would let a remote caller name files on the host).
    AddPublicKey {
        text: String,
        role: Role,
        scopes: Vec<String>,
    },
    Remove {
        key: String,
    },
    /// Require `required` valid signatures for plugins matching `scope`.
    Threshold {
        scope: String,
        required: usize,
    },
    /// Rotate from the local key `from` to the local key `to` (signed by `from`).
    Rotate {
        from: String,
        to: String,
    },
    /// Revoke a key id or a package digest, signed by a local key with the revocation role;
    /// the signed list is also written to `output` to distribute.
    Revoke {
        item: String,
        sign_with: String,
        from: Option<u64>,
        reason: String,
        output: Option<PathBuf>,
    },
    /// Import a signed rotation or revocation list.
    Import {
        file: PathBuf,
    },
    /// Import a signed rotation or revocation list given as its text (an upload: signed
    /// elsewhere, so the server never holds a revocation key).
    ImportSigned {
        text: String,
    },
}

/// Imports a signed rotation or revocation list (`what` names it in errors).
fn import_signed(
    store: &mut TrustStore,
    bytes: &[u8],
    what: &str,
) -> Result<(AuditAction, String)> {
    let refused = |e: secflow_trust::TrustError| HostError::refused(e.to_string());
    let signed: Signed = serde_json::from_slice(bytes)
        .map_err(|e| HostError::invalid(format!("{what}: not a signed SecFlow document: {e}")))?;
    Ok(
        if signed.body.contains(secflow_trust::lists::ROTATION_TYPE) {
            let id = store.rotate(&signed).map_err(refused)?;
            (
                AuditAction::TrustImport,
                format!("Rotation imported: {id} replaces {}", signed.key_id),
            )
        } else {
            let n = store.import_revocations(&signed).map_err(refused)?;
            (
                AuditAction::TrustImport,
                format!("Imported {n} new revocation(s)"),
            )
        },
    )
}

/// The verification of a package file.
#[derive(Debug)]
pub enum Verdict {
    /// Read and judged (accepted or refused, signature by signature).
    Judged(Box<Verification>),
    /// Not a readable package.
    Unreadable(String),
}

impl Host {
    /// The trust store as it is.
    pub fn trust_store(&self) -> Result<TrustStore> {
        self.load_trust_store()
    }

    /// Changes the trust store; returns a sentence saying what changed.
    pub async fn change_trust(&self, change: TrustChange) -> Result<String> {
        let _trust = self.inner.trust.lock().await;
        let mut store = self.load_trust_store()?;
        let now = store.observe_time(secflow_trust::now());
        let keys = KeyDir::new(self.paths().keys());
        let refused = |e: secflow_trust::TrustError| HostError::refused(e.to_string());
        let (action, what) = match change {
            TrustChange::Add { .. } | TrustChange::AddPublicKey { .. } => {
                let (public, role, scopes) = match change {
                    TrustChange::Add { key, role, scopes } => {
                        (self.resolve_public(&key)?, role, scopes)
                    }
                    TrustChange::AddPublicKey { text, role, scopes } => {
                        (PublicKeyFile::parse(&text)?.0, role, scopes)
                    }
                    _ => unreachable!("matched above"),
                };
                store.add_key(&public, role, scopes.clone(), now)?;
                (
                    AuditAction::TrustAdd,
                    format!(
                        "Trusted {} ({}) as {role} for {}",
                        public.key_id,
                        public.name,
                        scopes.join(", ")
                    ),
                )
            }
            TrustChange::Remove { key } => {
                if !store.remove_key(&key) {
                    return Err(HostError::new(
                        crate::ErrorKind::NotFound,
                        format!("no trusted key `{key}`"),
                    ));
                }
                (AuditAction::TrustRemove, format!("Removed {key}"))
            }
            TrustChange::Threshold { scope, required } => {
                store.set_threshold(&scope, required)?;
                (
                    AuditAction::TrustThreshold,
                    format!("Plugins matching {scope} now need {required} trusted signature(s)"),
                )
            }
            TrustChange::Rotate { from, to } => {
                let old = keys.signing_key(&from)?;
                let new_public = keys.public(&to)?;
                let signed = sign_rotation(&old, &new_public, now);
                let id = store.rotate(&signed).map_err(refused)?;
                (
                    AuditAction::TrustRotate,
                    format!("Rotated {from} -> {to} ({id}); {from} is retired"),
                )
            }
            TrustChange::Revoke {
                item,
                sign_with,
                from,
                reason,
                output,
            } => {
                let authority = keys.signing_key(&sign_with)?;
                let item = if store.key(&item).is_some() || item.len() == 32 {
                    RevokedItem::KeyId(item)
                } else if item.len() == 64 && item.bytes().all(|b| b.is_ascii_hexdigit()) {
                    RevokedItem::PackageSha256(item.to_ascii_lowercase())
                } else {
                    return Err(HostError::invalid(
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
                    let text = serde_json::to_string_pretty(&signed)
                        .map_err(|e| HostError::internal(e.to_string()))?;
                    crate::write_file(&output, text.as_bytes(), false)?;
                }
                store.import_revocations(&signed).map_err(refused)?;
                (AuditAction::TrustRevoke, "Revocation recorded".to_string())
            }
            TrustChange::Import { file } => {
                let bytes = std::fs::read(&file).map_err(|e| {
                    HostError::invalid(format!("cannot read {}: {e}", file.display()))
                })?;
                import_signed(&mut store, &bytes, &file.display().to_string())?
            }
            TrustChange::ImportSigned { text } => {
                import_signed(&mut store, text.as_bytes(), "the document")?
            }
        };
        self.save_trust_store(&store)?;
        self.record(vec![self.event(action, None, "ok", what.clone())])
            .await?;
        Ok(what)
    }

    /// A key given by a front end: a public key file path, or a local key name.
    fn resolve_public(&self, key: &str) -> Result<PublicKeyFile> {
        let path = Path::new(key);
        if path.is_file() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| HostError::invalid(format!("cannot read {key}: {e}")))?;
            return Ok(PublicKeyFile::parse(&text)?.0);
        }
        Ok(KeyDir::new(self.paths().keys()).public(key)?)
    }

    /// Adds a signature by the local key `key` to a package file, in place. Returns the
    /// signing key's id.
    pub fn sign_package(
        &self,
        file: &Path,
        key: &str,
        expires_in_days: Option<u64>,
    ) -> Result<String> {
        let signing = KeyDir::new(self.paths().keys()).signing_key(key)?;
        let bytes = std::fs::read(file)
            .map_err(|e| HostError::invalid(format!("cannot read {}: {e}", file.display())))?;
        let now = secflow_trust::now();
        let expires = expires_in_days.map(|d| now + d * 86_400);
        let signed = secflow_trust::add_signature(
            &bytes,
            &signing,
            now,
            expires,
            &PackageLimits::default(),
        )?;
        crate::write_file(file, &signed, false)?;
        Ok(secflow_trust::key_id(&signing.verifying_key()))
    }

    /// Verifies a package file against the trust store, without installing it. The trust
    /// store's clock and trusted versions persist, and the verdict is recorded.
    pub async fn verify_package_file(&self, file: &Path, allow_rollback: bool) -> Result<Verdict> {
        let bytes = std::fs::read(file)
            .map_err(|e| HostError::invalid(format!("cannot read {}: {e}", file.display())))?;
        self.verify_package(&bytes, &file.display().to_string(), allow_rollback)
            .await
    }

    /// Verifies package bytes (a file, an upload named `source`) against the trust store,
    /// without installing them; the verdict is recorded.
    pub async fn verify_package(
        &self,
        bytes: &[u8],
        source: &str,
        allow_rollback: bool,
    ) -> Result<Verdict> {
        let result = {
            let _trust = self.inner.trust.lock().await;
            let mut store = self.load_trust_store()?;
            let result = secflow_trust::verify(
                bytes,
                &mut store,
                secflow_trust::now(),
                &PackageLimits::default(),
                secflow_trust::VerifyOptions { allow_rollback },
            );
            self.save_trust_store(&store)?;
            result
        };
        let (plugin, decision, reason) = match &result {
            Ok(v) => (
                v.plugin_id.as_ref().map(|id| PluginRef {
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
        self.record(vec![Event {
            details: serde_json::json!({
                "file": source,
                "package_sha256": secflow_io::sha256_hex(bytes),
            }),
            ..self.event(AuditAction::SignatureVerify, plugin, decision, reason)
        }])
        .await?;
        Ok(match result {
            Ok(v) => Verdict::Judged(Box::new(v)),
            Err(e) => Verdict::Unreadable(e.to_string()),
        })
    }
}
