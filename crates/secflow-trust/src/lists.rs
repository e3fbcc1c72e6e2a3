//! Signed trust-store updates that can travel offline: key rotations and revocation lists.

use crate::TrustError;
use crate::keys::{PublicKeyFile, key_id, parse_public};
use crate::store::{Revocation, Role, SigOutcome, TrustStore, TrustedKey};
use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

pub const ROTATION_TYPE: &str = "secflow.key-rotation/v1";
pub const REVOCATION_TYPE: &str = "secflow.revocation-list/v1";

/// A signed document: the exact signed text, the signer, the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    pub key_id: String,
    pub body: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    #[serde(rename = "type")]
    pub kind: String,
    pub old_key_id: String,
    pub new_key: PublicKeyFile,
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    #[serde(rename = "type")]
    pub kind: String,
    pub issued_at: u64,
    pub entries: Vec<Revocation>,
}

fn sign_body<T: Serialize>(key: &SigningKey, body: &T) -> Signed {
    let text = serde_json::to_string(body).expect("serializes");
    let signature: Signature = key.sign(text.as_bytes());
    Signed {
        key_id: key_id(&key.verifying_key()),
        body: text,
        signature: hex::encode(signature.to_bytes()),
    }
}

/// Checks a signed document against a trusted key; returns the key.
fn open<'s>(store: &'s TrustStore, signed: &Signed) -> Result<&'s TrustedKey, TrustError> {
    if signed.body.len() > 1 << 20 {
        return Err(TrustError::Malformed(
            "signed document larger than 1 MiB".into(),
        ));
    }
    let key = store.key(&signed.key_id).ok_or_else(|| {
        TrustError::Refused(format!("key {} is not in the trust store", signed.key_id))
    })?;
    match key.check_signature(signed.body.as_bytes(), &signed.signature)? {
        SigOutcome::Verified => {}
        SigOutcome::Malformed => {
            return Err(TrustError::Malformed("malformed signature".into()));
        }
        SigOutcome::Invalid => {
            return Err(TrustError::Refused("the signature does not verify".into()));
        }
    }
    Ok(key)
}

/// The old key signs that `new_key` replaces it from `at` on.
pub fn sign_rotation(old: &SigningKey, new_key: &PublicKeyFile, at: u64) -> Signed {
    sign_body(
        old,
        &Rotation {
            kind: ROTATION_TYPE.into(),
            old_key_id: key_id(&old.verifying_key()),
            new_key: new_key.clone(),
            at,
        },
    )
}

/// A revocation authority signs a list of revocations.
pub fn sign_revocations(
    authority: &SigningKey,
    entries: Vec<Revocation>,
    issued_at: u64,
) -> Signed {
    sign_body(
        authority,
        &RevocationList {
            kind: REVOCATION_TYPE.into(),
            issued_at,
            entries,
        },
    )
}

impl TrustStore {
    /// Applies a rotation signed by a trusted, not yet retired key: the new key gets the old
    /// key's role and scopes; the old key is retired from the rotation time on.
    pub fn rotate(&mut self, signed: &Signed) -> Result<String, TrustError> {
        let old = open(self, signed)?.clone();
        if let Some(at) = old.retired_at {
            return Err(TrustError::Refused(format!(
                "key {} was already retired at {at}",
                old.key_id
            )));
        }
        let rotation: Rotation = serde_json::from_str(&signed.body)
            .map_err(|e| TrustError::Malformed(format!("rotation statement: {e}")))?;
        if rotation.kind != ROTATION_TYPE || rotation.old_key_id != old.key_id {
            return Err(TrustError::Malformed("not a rotation of this key".into()));
        }
        let new_public = parse_public(&rotation.new_key.public)?;
        if key_id(&new_public) != rotation.new_key.key_id || rotation.new_key.key_id == old.key_id {
            return Err(TrustError::BadKey(
                "the new key's id does not match, or it is the old key".into(),
            ));
        }
        self.add_key(&rotation.new_key, old.role, old.scopes.clone(), rotation.at)?;
        if let Some(new) = self
            .keys
            .iter_mut()
            .find(|k| k.key_id == rotation.new_key.key_id)
        {
            new.rotated_from = Some(old.key_id.clone());
        }
        if let Some(old) = self.keys.iter_mut().find(|k| k.key_id == old.key_id) {
            old.retired_at = Some(rotation.at);
        }
        Ok(rotation.new_key.key_id)
    }

    /// Imports a revocation list signed by a trusted revocation authority, or by a trusted
    /// marketplace key for package digests only (a marketplace's kill list of what it
    /// distributed; it may not revoke keys). Returns how many entries were new.
    pub fn import_revocations(&mut self, signed: &Signed) -> Result<usize, TrustError> {
        let key = open(self, signed)?;
        if let Some(at) = key.retired_at {
            return Err(TrustError::Refused(format!(
                "key {} was retired at {at}: it signs no more revocation lists",
                key.key_id
            )));
        }
        let role = key.role;
        if !matches!(role, Role::RevocationAuthority | Role::Marketplace) {
            return Err(TrustError::Refused(format!(
                "key {} has role {}, not revocation: it cannot revoke",
                key.key_id, key.role
            )));
        }
        let list: RevocationList = serde_json::from_str(&signed.body)
            .map_err(|e| TrustError::Malformed(format!("revocation list: {e}")))?;
        if list.kind != REVOCATION_TYPE {
            return Err(TrustError::Malformed("not a revocation list".into()));
        }
        if role == Role::Marketplace
            && let Some(entry) = list
                .entries
                .iter()
                .find(|e| !matches!(e.item, crate::store::RevokedItem::PackageSha256(_)))
        {
            return Err(TrustError::Refused(format!(
                "a marketplace key revokes package digests only, not {:?}: refusing the whole list",
                entry.item
            )));
        }
        let mut added = 0;
        for entry in list.entries {
            if !self.revocations.contains(&entry) {
                self.revocations.push(entry);
                added += 1;
            }
        }
        Ok(added)
    }
}
