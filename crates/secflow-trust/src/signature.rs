//! Signed statements and the signature block of a package.
//!
//! A signature covers a *statement*, not just a hash: the package digest, plugin id, version,
//! kind, a digest of the declared capabilities, the signer's key id, when it was issued and
//! when it expires. The statement travels as the exact bytes that were signed; a verifier
//! checks the Ed25519 signature (`verify_strict`) over those bytes *before* parsing them.
//! Signatures sit in the package's signature block, outside the signed payload, so adding a
//! countersignature never invalidates the others.

use crate::TrustError;
use crate::keys::key_id;
use ed25519_dalek::{Signature, Signer, SigningKey};
use secflow_manifest::{Capabilities, Manifest};
use serde::{Deserialize, Serialize};

/// The statement type string; a different format gets a different string.
pub const STATEMENT_TYPE: &str = "secflow.package-signature/v1";

/// What a signer vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    #[serde(rename = "type")]
    pub kind: String,
    pub package_sha256: String,
    pub plugin_id: String,
    pub version: String,
    pub plugin_kind: String,
    pub capabilities_sha256: String,
    pub key_id: String,
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    pub expires_at: Option<u64>,
}

/// One signature in the block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// Which key signed (a hint to find the key; checked against the statement).
    pub key_id: String,
    /// The exact signed bytes: the statement as JSON text.
    pub statement: String,
    /// Ed25519 signature, hex.
    pub signature: String,
}

/// The package's signature block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBlock {
    pub signatures: Vec<SignatureEntry>,
}

/// Most signatures a block may hold.
pub const MAX_SIGNATURES: usize = 32;

impl SignatureBlock {
    /// Parses a block from untrusted bytes (empty means unsigned).
    pub fn parse(bytes: &[u8]) -> Result<SignatureBlock, TrustError> {
        if bytes.is_empty() {
            return Ok(SignatureBlock::default());
        }
        let block: SignatureBlock = serde_json::from_slice(bytes)
            .map_err(|e| TrustError::Malformed(format!("signature block: {e}")))?;
        if block.signatures.len() > MAX_SIGNATURES {
            return Err(TrustError::Malformed(format!(
                "more than {MAX_SIGNATURES} signatures"
            )));
        }
        let lower_hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        for entry in &block.signatures {
            if entry.statement.len() > 4096
                || entry.key_id.len() != 32
                || entry.signature.len() != 128
            {
                return Err(TrustError::Malformed(
                    "a signature entry has the wrong size".into(),
                ));
            }
            // One spelling per value: uppercase hex would decode to the same bytes.
            if !lower_hex(&entry.key_id) || !lower_hex(&entry.signature) {
                return Err(TrustError::Malformed(
                    "key ids and signatures are lowercase hex".into(),
                ));
            }
        }
        Ok(block)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a signature block serializes")
    }
}

/// Digest of the declared capabilities, so a signature also pins what the plugin may ask for.
pub fn capabilities_digest(caps: &Capabilities) -> String {
    let canonical = serde_json::to_vec(caps).expect("capabilities serialize");
    secflow_io::sha256_hex(&canonical)
}

/// Builds the statement for a package and signs it.
pub fn sign(
    key: &SigningKey,
    manifest: &Manifest,
    package_sha256: &str,
    issued_at: u64,
    expires_at: Option<u64>,
) -> SignatureEntry {
    let id = key_id(&key.verifying_key());
    let statement = Statement {
        kind: STATEMENT_TYPE.to_string(),
        package_sha256: package_sha256.to_string(),
        plugin_id: manifest.id.to_string(),
        version: manifest.version.to_string(),
        plugin_kind: manifest.kind.to_string(),
        capabilities_sha256: capabilities_digest(&manifest.capabilities),
        key_id: id.clone(),
        issued_at,
        expires_at,
    };
    let text = serde_json::to_string(&statement).expect("a statement serializes");
    let signature: Signature = key.sign(text.as_bytes());
    SignatureEntry {
        key_id: id,
        statement: text,
        signature: hex::encode(signature.to_bytes()),
    }
}

/// Adds a signature to a package file, keeping every existing one (a signature by the same
/// key replaces that key's older one). Returns the new package bytes.
pub fn add_signature(
    package: &[u8],
    key: &SigningKey,
    now: u64,
    expires_at: Option<u64>,
    limits: &secflow_package::PackageLimits,
) -> Result<Vec<u8>, TrustError> {
    let envelope = secflow_package::Envelope::split(package, limits)?;
    let mut block = SignatureBlock::parse(envelope.signatures)?;
    // The signer reads what it signs: the payload must be a valid package.
    let contents = secflow_package::read_payload(envelope.payload, limits)?;
    let entry = sign(key, &contents.manifest, &envelope.digest(), now, expires_at);
    block.signatures.retain(|s| s.key_id != entry.key_id);
    block.signatures.push(entry);
    if block.signatures.len() > MAX_SIGNATURES {
        return Err(TrustError::Malformed(format!(
            "more than {MAX_SIGNATURES} signatures"
        )));
    }
    Ok(secflow_package::assemble(
        envelope.payload,
        &block.to_bytes(),
    ))
}
