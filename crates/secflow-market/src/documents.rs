//! The signed documents a marketplace and its clients exchange, and their verification:
//!
//! - the **index** (what can be installed), signed by the marketplace key (or k of n keys),
//!   with a version that only grows and an expiry, so a client refuses an index older than
//!   one it has seen (rollback) and one that was not re-signed in time (freeze): TUF's
//!   timestamp rules on one document;
//! - the **install receipt** and the **rating**, signed by a client's host key: a receipt
//!   counts one install per host and version, and only a host that sent one may rate.
//!
//! Signatures are checked over the exact signed text before it is parsed (the same rule as
//! packages). Why not TUF through `tough`: see `docs/marketplace.md`.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const INDEX_TYPE: &str = "secflow.market-index/v1";
pub const RECEIPT_TYPE: &str = "secflow.install-receipt/v1";
pub const RATING_TYPE: &str = "secflow.rating/v1";

/// Largest signed index accepted (a marketplace of many thousand plugins fits).
pub const MAX_INDEX_BYTES: usize = 32 << 20;
/// Largest receipt or rating accepted.
pub const MAX_HOST_DOCUMENT_BYTES: usize = 8 << 10;
/// Most signatures on one document.
pub const MAX_SIGNATURES: usize = 16;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("{valid} valid signature(s) by trusted keys; {required} required")]
    NotEnoughSignatures { valid: usize, required: usize },
    #[error(
        "rollback: index version {got} is older than version {seen}, already seen; a mirror or proxy is replaying an old index"
    )]
    Rollback { got: u64, seen: u64 },
    #[error(
        "frozen: the index expired at {expired_at} (now {now}); the marketplace stopped re-signing it, or someone is replaying a stale copy"
    )]
    Expired { expired_at: u64, now: u64 },
    #[error("the signature does not verify over the document")]
    BadSignature,
}

/// A document and the signatures over its exact text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedDocument {
    /// The document as JSON text: the exact signed bytes.
    pub signed: String,
    pub signatures: Vec<DocumentSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DocumentSignature {
    pub key_id: String,
    /// Ed25519 over `signed`, hex.
    pub signature: String,
}

fn signature_of(key: &SigningKey, text: &str) -> DocumentSignature {
    let signature: Signature = key.sign(text.as_bytes());
    DocumentSignature {
        key_id: secflow_trust::key_id(&key.verifying_key()),
        signature: hex::encode(signature.to_bytes()),
    }
}

fn verifies(key: &VerifyingKey, text: &str, signature_hex: &str) -> bool {
    hex::decode(signature_hex)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .is_some_and(|b| {
            key.verify_strict(text.as_bytes(), &Signature::from_bytes(&b))
                .is_ok()
        })
}

impl SignedDocument {
    /// Signs `body` with every key in `keys`.
    pub fn sign<T: Serialize>(body: &T, keys: &[&SigningKey]) -> SignedDocument {
        let signed = serde_json::to_string(body).expect("a document serializes");
        let signatures = keys.iter().map(|k| signature_of(k, &signed)).collect();
        SignedDocument { signed, signatures }
    }

    /// The signed text, once at least `threshold` distinct keys of `trusted` signed it.
    pub fn open(&self, trusted: &[VerifyingKey], threshold: usize) -> Result<&str, DocumentError> {
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(DocumentError::Malformed(format!(
                "more than {MAX_SIGNATURES} signatures"
            )));
        }
        let mut valid: Vec<String> = Vec::new();
        for entry in &self.signatures {
            let Some(key) = trusted
                .iter()
                .find(|k| secflow_trust::key_id(k) == entry.key_id)
            else {
                continue;
            };
            if verifies(key, &self.signed, &entry.signature) && !valid.contains(&entry.key_id) {
                valid.push(entry.key_id.clone());
            }
        }
        let required = threshold.max(1);
        if valid.len() < required {
            return Err(DocumentError::NotEnoughSignatures {
                valid: valid.len(),
                required,
            });
        }
        Ok(&self.signed)
    }
}

/// What a marketplace offers: every approved, unrevoked version of every plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Index {
    #[serde(rename = "type")]
    pub kind: String,
    /// Grows by one at every signing; a client refuses a lower one than it has seen.
    pub version: u64,
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    /// After this a client refuses the index (it was not re-signed: frozen or replayed).
    pub expires_at: u64,
    pub plugins: Vec<IndexPlugin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IndexPlugin {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub description: String,
    pub publisher: String,
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    /// Oldest first.
    pub versions: Vec<IndexVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IndexVersion {
    pub version: String,
    /// SHA-256 of the package payload (what signatures and revocations name).
    pub sha256: String,
    /// SHA-256 of the countersigned package file served for download.
    pub file_sha256: String,
    pub size: u64,
    pub published_at: u64,
    /// Yanked versions are not picked by a version range; an exact version still installs.
    pub yanked: bool,
    /// Capability labels the version asks for.
    pub capabilities: Vec<String>,
    /// Plugin id to semver range.
    pub dependencies: BTreeMap<String, String>,
}

impl Index {
    /// Verifies a signed index for a client: enough trusted signatures over the text, the
    /// right type, not expired at `now`, and not older than the last version seen.
    pub fn open(
        doc: &SignedDocument,
        trusted: &[VerifyingKey],
        threshold: usize,
        now: u64,
        last_seen: Option<u64>,
    ) -> Result<Index, DocumentError> {
        if doc.signed.len() > MAX_INDEX_BYTES {
            return Err(DocumentError::Malformed(format!(
                "an index larger than {} MiB",
                MAX_INDEX_BYTES >> 20
            )));
        }
        let text = doc.open(trusted, threshold)?;
        let index: Index = serde_json::from_str(text)
            .map_err(|e| DocumentError::Malformed(format!("index: {e}")))?;
        if index.kind != INDEX_TYPE {
            return Err(DocumentError::Malformed(format!(
                "not a marketplace index (type `{}`)",
                index.kind
            )));
        }
        if index.expires_at <= now {
            return Err(DocumentError::Expired {
                expired_at: index.expires_at,
                now,
            });
        }
        if let Some(seen) = last_seen
            && index.version < seen
        {
            return Err(DocumentError::Rollback {
                got: index.version,
                seen,
            });
        }
        Ok(index)
    }
}

/// A document signed by a client's host key, the key travelling with it: whoever holds the
/// key is that host, so the key id is the host's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HostSigned {
    /// The host's Ed25519 public key, hex.
    pub public_key: String,
    /// The receipt or rating as JSON text: the exact signed bytes.
    pub signed: String,
    /// Ed25519 over `signed`, hex.
    pub signature: String,
}

/// "This host installed this exact package."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    #[serde(rename = "type")]
    pub kind: String,
    pub plugin_id: String,
    pub version: String,
    /// The package payload digest it installed.
    pub sha256: String,
    pub issued_at: u64,
}

/// A host's rating of a plugin it installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rating {
    #[serde(rename = "type")]
    pub kind: String,
    pub plugin_id: String,
    /// 1 to 5.
    pub stars: u8,
    pub text: String,
    pub issued_at: u64,
}

impl HostSigned {
    pub fn sign<T: Serialize>(body: &T, key: &SigningKey) -> HostSigned {
        let signed = serde_json::to_string(body).expect("a document serializes");
        HostSigned {
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: signature_of(key, &signed).signature,
            signed,
        }
    }

    /// The host's identity (its key id) and the document, once the signature verifies.
    fn open<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
    ) -> Result<(String, T), DocumentError> {
        if self.signed.len() > MAX_HOST_DOCUMENT_BYTES {
            return Err(DocumentError::Malformed(format!(
                "a {what} larger than {} KiB",
                MAX_HOST_DOCUMENT_BYTES >> 10
            )));
        }
        let key = secflow_trust::keys::parse_public(&self.public_key)
            .map_err(|e| DocumentError::Malformed(format!("host key: {e}")))?;
        if !verifies(&key, &self.signed, &self.signature) {
            return Err(DocumentError::BadSignature);
        }
        let body = serde_json::from_str(&self.signed)
            .map_err(|e| DocumentError::Malformed(format!("{what}: {e}")))?;
        Ok((secflow_trust::key_id(&key), body))
    }

    /// Opens an install receipt: (host id, receipt).
    pub fn receipt(&self) -> Result<(String, Receipt), DocumentError> {
        let (host, receipt): (String, Receipt) = self.open("receipt")?;
        if receipt.kind != RECEIPT_TYPE {
            return Err(DocumentError::Malformed("not an install receipt".into()));
        }
        Ok((host, receipt))
    }

    /// Opens a rating: (host id, rating).
    pub fn rating(&self) -> Result<(String, Rating), DocumentError> {
        let (host, rating): (String, Rating) = self.open("rating")?;
        if rating.kind != RATING_TYPE {
            return Err(DocumentError::Malformed("not a rating".into()));
        }
        if !(1..=5).contains(&rating.stars) {
            return Err(DocumentError::Malformed("stars are 1 to 5".into()));
        }
        if rating.text.chars().count() > 2000 {
            return Err(DocumentError::Malformed(
                "a rating's text is at most 2000 characters".into(),
            ));
        }
        Ok((host, rating))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn index(version: u64, expires_at: u64) -> Index {
        Index {
            kind: INDEX_TYPE.into(),
            version,
            issued_at: 100,
            expires_at,
            plugins: Vec::new(),
        }
    }

    #[test]
    fn an_index_is_refused_when_rolled_back_frozen_edited_or_under_signed() {
        let (a, b, stranger) = (key(1), key(2), key(3));
        let trusted = [a.verifying_key(), b.verifying_key()];
        let doc = SignedDocument::sign(&index(7, 1000), &[&a]);
        assert_eq!(
            Index::open(&doc, &trusted, 1, 500, Some(7))
                .unwrap()
                .version,
            7
        );
        assert_eq!(
            Index::open(&doc, &trusted, 1, 500, Some(8)),
            Err(DocumentError::Rollback { got: 7, seen: 8 })
        );
        assert_eq!(
            Index::open(&doc, &trusted, 1, 1000, None),
            Err(DocumentError::Expired {
                expired_at: 1000,
                now: 1000
            })
        );
        let mut edited = doc.clone();
        edited.signed = edited.signed.replace("\"version\":7", "\"version\":9");
        assert_ne!(edited.signed, doc.signed);
        assert_eq!(
            Index::open(&edited, &trusted, 1, 500, None),
            Err(DocumentError::NotEnoughSignatures {
                valid: 0,
                required: 1
            })
        );
        // k of n: one key is not two, the same key twice is still one, a stranger counts
        // for nothing.
        assert!(matches!(
            Index::open(&doc, &trusted, 2, 500, None),
            Err(DocumentError::NotEnoughSignatures { valid: 1, .. })
        ));
        let mut twice = doc.clone();
        twice.signatures.push(twice.signatures[0].clone());
        assert!(Index::open(&twice, &trusted, 2, 500, None).is_err());
        let by_stranger = SignedDocument::sign(&index(7, 1000), &[&a, &stranger]);
        assert!(Index::open(&by_stranger, &trusted, 2, 500, None).is_err());
        let both = SignedDocument::sign(&index(7, 1000), &[&a, &b]);
        assert!(Index::open(&both, &trusted, 2, 500, None).is_ok());
        // Another document type signed by the same key is not an index.
        let other = SignedDocument::sign(&serde_json::json!({"type": "x", "version": 1}), &[&a]);
        assert!(matches!(
            Index::open(&other, &trusted, 1, 500, None),
            Err(DocumentError::Malformed(_))
        ));
    }

    #[test]
    fn host_documents_name_their_signer_and_refuse_edits_and_swapped_keys() {
        let host = key(9);
        let receipt = Receipt {
            kind: RECEIPT_TYPE.into(),
            plugin_id: "acme-scan".into(),
            version: "1.0.0".into(),
            sha256: "ab".repeat(32),
            issued_at: 5,
        };
        let doc = HostSigned::sign(&receipt, &host);
        let (id, opened) = doc.receipt().unwrap();
        assert_eq!(id, secflow_trust::key_id(&host.verifying_key()));
        assert_eq!(opened, receipt);
        let mut edited = doc.clone();
        edited.signed = edited.signed.replace("1.0.0", "2.0.0");
        assert_eq!(edited.receipt(), Err(DocumentError::BadSignature));
        let mut swapped = doc.clone();
        swapped.public_key = hex::encode(key(8).verifying_key().as_bytes());
        assert_eq!(swapped.receipt(), Err(DocumentError::BadSignature));
        // A receipt is not a rating.
        assert!(matches!(doc.rating(), Err(DocumentError::Malformed(_))));
        let rating = |stars| Rating {
            kind: RATING_TYPE.into(),
            plugin_id: "acme-scan".into(),
            stars,
            text: "works".into(),
            issued_at: 6,
        };
        assert!(HostSigned::sign(&rating(5), &host).rating().is_ok());
        assert!(HostSigned::sign(&rating(0), &host).rating().is_err());
        assert!(HostSigned::sign(&rating(6), &host).rating().is_err());
    }
}
