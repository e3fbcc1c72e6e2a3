//! Ed25519 signing keys: generation, files, stable key ids.
//!
//! A key pair lives in two files under a directory: `NAME.key` (the secret seed, mode 0600,
//! never printed) and `NAME.pub` (the public key and its id, safe to share). The key id is
//! the first 16 bytes of SHA-256 over the public key, hex, so it is stable and derivable
//! by anyone holding the public key.

use crate::TrustError;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The public half, as written to `NAME.pub` and shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyFile {
    #[serde(rename = "type")]
    pub kind: String,
    pub key_id: String,
    pub public: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyFile {
    #[serde(rename = "type")]
    kind: String,
    seed: String,
}

/// The key id of a public key.
pub fn key_id(public: &VerifyingKey) -> String {
    secflow_io::key_id(public.as_bytes())
}

/// Parses a hex public key, refusing weak (small-order) keys.
pub fn parse_public(hex_key: &str) -> Result<VerifyingKey, TrustError> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TrustError::BadKey("a public key is 64 hex characters".into()))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| TrustError::BadKey("not a valid Ed25519 public key".into()))?;
    if key.is_weak() {
        return Err(TrustError::BadKey(
            "weak (small-order) public key refused".into(),
        ));
    }
    Ok(key)
}

impl PublicKeyFile {
    pub fn new(name: &str, key: &VerifyingKey) -> PublicKeyFile {
        PublicKeyFile {
            kind: "ed25519".into(),
            key_id: key_id(key),
            public: hex::encode(key.as_bytes()),
            name: name.to_string(),
        }
    }

    /// Parses and checks a public key file (the id must match the key).
    pub fn parse(text: &str) -> Result<(PublicKeyFile, VerifyingKey), TrustError> {
        let file: PublicKeyFile = serde_json::from_str(text)
            .map_err(|e| TrustError::BadKey(format!("not a SecFlow public key file: {e}")))?;
        if file.kind != "ed25519" {
            return Err(TrustError::BadKey(format!(
                "unsupported key type `{}`",
                file.kind
            )));
        }
        let key = parse_public(&file.public)?;
        if key_id(&key) != file.key_id {
            return Err(TrustError::BadKey(
                "the key id does not match the public key".into(),
            ));
        }
        Ok((file, key))
    }
}

/// A directory of named key pairs.
#[derive(Debug, Clone)]
pub struct KeyDir {
    pub dir: PathBuf,
}

fn check_name(name: &str) -> Result<(), TrustError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(TrustError::BadKey(format!(
            "key name `{}`: use 1 to 64 letters, digits, `-` or `_`",
            name.escape_debug()
        )))
    }
}

impl KeyDir {
    pub fn new(dir: impl Into<PathBuf>) -> KeyDir {
        KeyDir { dir: dir.into() }
    }

    /// Generates a key pair named `name`. Refuses to overwrite an existing one.
    pub fn generate(&self, name: &str) -> Result<PublicKeyFile, TrustError> {
        check_name(name)?;
        let secret_path = self.dir.join(format!("{name}.key"));
        if secret_path.exists() {
            return Err(TrustError::BadKey(format!(
                "a key named `{name}` already exists; pick another name"
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        secflow_io::restrict(&self.dir, 0o700).map_err(|e| io(&self.dir, e))?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| TrustError::BadKey(format!("no randomness: {e}")))?;
        let signing = SigningKey::from_bytes(&seed);
        let secret = SecretKeyFile {
            kind: "ed25519".into(),
            seed: hex::encode(seed),
        };
        seed.fill(0);
        let public = PublicKeyFile::new(name, &signing.verifying_key());
        write_private(
            &secret_path,
            serde_json::to_string(&secret)
                .expect("serializes")
                .as_bytes(),
        )?;
        let pub_path = self.dir.join(format!("{name}.pub"));
        write_file(
            &pub_path,
            serde_json::to_string_pretty(&public)
                .expect("serializes")
                .as_bytes(),
        )?;
        Ok(public)
    }

    /// Loads the signing key `name`.
    pub fn signing_key(&self, name: &str) -> Result<SigningKey, TrustError> {
        check_name(name)?;
        let path = self.dir.join(format!("{name}.key"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            TrustError::BadKey(format!(
                "cannot read key `{name}` ({}): {e}; create it with `secflow key generate --name {name}`",
                path.display()
            ))
        })?;
        let file: SecretKeyFile = serde_json::from_str(&text).map_err(|e| {
            TrustError::BadKey(format!("{} is not a SecFlow key file: {e}", path.display()))
        })?;
        let seed: [u8; 32] = hex::decode(&file.seed)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                TrustError::BadKey(format!("{} holds a malformed seed", path.display()))
            })?;
        Ok(SigningKey::from_bytes(&seed))
    }

    /// The public key file of `name`.
    pub fn public(&self, name: &str) -> Result<PublicKeyFile, TrustError> {
        let signing = self.signing_key(name)?;
        Ok(PublicKeyFile::new(name, &signing.verifying_key()))
    }

    /// Every key pair in the directory, sorted by name.
    pub fn list(&self) -> Result<Vec<PublicKeyFile>, TrustError> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "key")
                && let Some(name) = path.file_stem().and_then(|s| s.to_str())
            {
                out.push(self.public(name)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

fn io(path: &Path, e: std::io::Error) -> TrustError {
    TrustError::Io(format!("{}: {e}", path.display()))
}

/// Writes a file atomically (temporary file, fsync, rename), readable by others.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TrustError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    secflow_io::write_atomic(path, bytes, secflow_io::Mode::Shared).map_err(|e| io(path, e))
}

/// Writes a secret key: 0600 from its first byte.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TrustError> {
    secflow_io::write_atomic(path, bytes, secflow_io::Mode::Private).map_err(|e| io(path, e))
}
