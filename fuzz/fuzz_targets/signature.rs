//! Fuzzes the signature envelope: the signature block parser, and whole-package verification
//! against a trust store holding one fixed key. Must never panic or accept garbage.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secflow_package::PackageLimits;
use secflow_trust::{SignatureBlock, TrustStore, VerifyOptions, verify};

fuzz_target!(|data: &[u8]| {
    let _ = SignatureBlock::parse(data);
    let mut store = TrustStore::default();
    if let Ok(v) = verify(data, &mut store, 1_790_000_000, &PackageLimits::default(), VerifyOptions::default()) {
        // Nothing is trusted, so nothing may be accepted.
        assert!(!v.accepted());
    }
});
