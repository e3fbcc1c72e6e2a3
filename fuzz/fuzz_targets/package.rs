//! Fuzzes the package envelope and payload reader with arbitrary bytes: as a whole file, and
//! as a bare payload. Must never panic, hang or allocate past the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secflow_package::{Envelope, PackageLimits, read_payload};

fuzz_target!(|data: &[u8]| {
    let limits = PackageLimits {
        max_total_bytes: 8 << 20,
        max_entry_bytes: 4 << 20,
        ..PackageLimits::default()
    };
    if let Ok(envelope) = Envelope::split(data, &limits) {
        let _ = envelope.digest();
        let _ = read_payload(envelope.payload, &limits);
    }
    let _ = read_payload(data, &limits);
});
