//! Fuzzes the unpacker of uploaded scan targets (`.tar.gz`, `.tar`, `.zip`) with arbitrary
//! bytes. Must never panic or hang, never write outside the destination, and stay within
//! the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secflow_server::archive::{Limits, unpack};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_entries: 64,
        max_file_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    let root = tempfile::tempdir().expect("a temporary directory");
    let dest = root.path().join("t");
    std::fs::create_dir(&dest).expect("the destination");
    if let Ok(out) = unpack(data, &dest, limits) {
        assert!(out.files <= limits.max_entries && out.bytes <= limits.max_total_bytes);
    }
    assert_eq!(
        std::fs::read_dir(root.path()).expect("readable").count(),
        1,
        "an entry escaped the destination"
    );
});
