//! Fuzzes what a marketplace and its clients parse from each other: a signed index (client
//! side, with rollback and expiry checks) and host-signed install receipts and ratings
//! (server side). Must never panic, and nothing unsigned may be accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secflow_market::{HostSigned, Index, SignedDocument};

fuzz_target!(|data: &[u8]| {
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    if let Ok(doc) = serde_json::from_slice::<SignedDocument>(data) {
        // Nothing here is signed by the key: a random document never opens.
        assert!(Index::open(&doc, &[key], 1, 1_000, Some(3)).is_err());
    }
    if let Ok(doc) = serde_json::from_slice::<HostSigned>(data) {
        let _ = doc.receipt();
        let _ = doc.rating();
    }
});
