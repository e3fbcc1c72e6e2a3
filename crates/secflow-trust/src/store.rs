//! The trust store: which keys are trusted, for what, and what has been revoked.
//!
//! Kept as one JSON file written atomically. Besides keys (with a role and a scope of plugin
//! ids), it holds k-of-n thresholds per scope, revocations of keys and package digests (each
//! from a time on), the latest trusted time seen (so expiry is judged by a clock that never
//! moves backwards), and the highest version accepted per plugin (rollback protection).

use crate::TrustError;
use crate::keys::{PublicKeyFile, parse_public};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a trusted key may vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Signs the packages it publishes.
    Publisher,
    /// Countersigns packages it has vetted.
    Marketplace,
    /// Signs revocation lists; never counts toward a package's threshold.
    RevocationAuthority,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "publisher" => Ok(Role::Publisher),
            "marketplace" => Ok(Role::Marketplace),
            "revocation" | "revocation-authority" => Ok(Role::RevocationAuthority),
            other => Err(format!(
                "unknown role `{other}`; use publisher, marketplace or revocation"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Publisher => "publisher",
            Role::Marketplace => "marketplace",
            Role::RevocationAuthority => "revocation",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    pub key_id: String,
    pub public: String,
    pub name: String,
    pub role: Role,
    /// Globs of plugin ids this key may sign (`*`, `acme-*`).
    pub scopes: Vec<String>,
    pub added_at: u64,
    /// After this time the key's new signatures are refused (set by rotation).
    pub retired_at: Option<u64>,
    /// The key this one replaced, when added by rotation.
    pub rotated_from: Option<String>,
}

/// The outcome of checking one signature against a trusted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigOutcome {
    Verified,
    /// The signature is not 64 bytes of hex.
    Malformed,
    /// `verify_strict` rejected it: the bytes or the signature were changed.
    Invalid,
}

impl TrustedKey {
    /// Checks an Ed25519 signature (hex) over `body` with this key, strictly. The one place
    /// SecFlow verifies signatures, for package statements and trust-store updates alike.
    /// Errs only when the stored public key itself is unusable.
    pub(crate) fn check_signature(
        &self,
        body: &[u8],
        signature_hex: &str,
    ) -> Result<SigOutcome, TrustError> {
        let public = parse_public(&self.public)?;
        let Some(signature) = hex::decode(signature_hex)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| ed25519_dalek::Signature::from_bytes(&b))
        else {
            return Ok(SigOutcome::Malformed);
        };
        Ok(match public.verify_strict(body, &signature) {
            Ok(()) => SigOutcome::Verified,
            Err(_) => SigOutcome::Invalid,
        })
    }
}

/// What a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum RevokedItem {
    KeyId(String),
    PackageSha256(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub item: RevokedItem,
    /// Signatures issued at or after this time (keys), or any use from this time on
    /// (packages), are refused.
    pub from: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    /// Glob of plugin ids.
    pub scope: String,
    /// Distinct trusted signatures required.
    pub required: usize,
}

/// A recorded decision to accept an older version than one already trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOverride {
    pub plugin_id: String,
    pub from_version: String,
    pub to_version: String,
    pub at: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustStore {
    #[serde(default)]
    pub keys: Vec<TrustedKey>,
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    #[serde(default)]
    pub revocations: Vec<Revocation>,
    /// Highest time seen, seconds since the epoch.
    #[serde(default)]
    pub latest_time: u64,
    /// Highest version accepted per plugin id.
    #[serde(default)]
    pub trusted_versions: BTreeMap<String, String>,
    #[serde(default)]
    pub rollback_overrides: Vec<RollbackOverride>,
}

/// Matches a plugin id against a scope glob.
pub fn scope_matches(scope: &str, plugin_id: &str) -> bool {
    glob::Pattern::new(scope).is_ok_and(|p| p.matches(plugin_id))
}

/// Refuses a scope that is not a valid glob, naming it.
fn check_scope(scope: &str) -> Result<(), TrustError> {
    glob::Pattern::new(scope)
        .map(drop)
        .map_err(|e| TrustError::BadKey(format!("scope `{scope}` is not a valid glob: {e}")))
}

impl TrustStore {
    /// The store file under a home directory.
    pub fn path(home: &Path) -> PathBuf {
        home.join("trust/store.json")
    }

    /// Loads the store, or an empty one when the file does not exist.
    pub fn load(path: &Path) -> Result<TrustStore, TrustError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                TrustError::Malformed(format!("trust store {} is corrupt: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustStore::default()),
            Err(e) => Err(TrustError::Io(format!("{}: {e}", path.display()))),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), TrustError> {
        crate::keys::write_file(
            path,
            &serde_json::to_vec_pretty(self).expect("store serializes"),
        )
    }

    /// The trusted time: never earlier than any time already seen. Records `now` when later.
    pub fn observe_time(&mut self, now: u64) -> u64 {
        self.latest_time = self.latest_time.max(now);
        self.latest_time
    }

    /// Adds a trusted key (replacing its role and scopes if already present).
    pub fn add_key(
        &mut self,
        public: &PublicKeyFile,
        role: Role,
        scopes: Vec<String>,
        now: u64,
    ) -> Result<(), TrustError> {
        parse_public(&public.public)?;
        for scope in &scopes {
            check_scope(scope)?;
        }
        if scopes.is_empty() {
            return Err(TrustError::BadKey(
                "give at least one scope (e.g. `*` or `acme-*`)".into(),
            ));
        }
        self.keys.retain(|k| k.key_id != public.key_id);
        self.keys.push(TrustedKey {
            key_id: public.key_id.clone(),
            public: public.public.clone(),
            name: public.name.clone(),
            role,
            scopes,
            added_at: now,
            retired_at: None,
            rotated_from: None,
        });
        Ok(())
    }

    /// Removes a key by id or name; returns whether one was removed.
    pub fn remove_key(&mut self, id_or_name: &str) -> bool {
        let before = self.keys.len();
        self.keys
            .retain(|k| k.key_id != id_or_name && k.name != id_or_name);
        self.keys.len() != before
    }

    pub fn key(&self, key_id: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }

    /// Signatures required for a plugin id: the highest threshold whose scope matches, or 1.
    pub fn required_signatures(&self, plugin_id: &str) -> usize {
        self.thresholds
            .iter()
            .filter(|t| scope_matches(&t.scope, plugin_id))
            .map(|t| t.required)
            .max()
            .unwrap_or(1)
            .max(1)
    }

    pub fn set_threshold(&mut self, scope: &str, required: usize) -> Result<(), TrustError> {
        check_scope(scope)?;
        self.thresholds.retain(|t| t.scope != scope);
        self.thresholds.push(Threshold {
            scope: scope.to_string(),
            required: required.max(1),
        });
        Ok(())
    }

    /// The time from which an item is revoked, if it is.
    pub fn revoked_from(&self, item: &RevokedItem) -> Option<u64> {
        self.revocations
            .iter()
            .filter(|r| &r.item == item)
            .map(|r| r.from)
            .min()
    }
}
