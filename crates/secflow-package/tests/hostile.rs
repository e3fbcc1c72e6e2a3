//! Hostile packages: every malformed or malicious input is refused with a clear error, and
//! nothing panics. Payloads are crafted byte by byte where the tar crate would refuse to
//! write them.

use flate2::Compression;
use secflow_package::{Envelope, PackageError, PackageLimits, assemble, pack_dir, read_payload};
use std::io::Write;

const MANIFEST: &str = "id = \"demo\"\nversion = \"1.0.0\"\nkind = \"action\"\nname = \"Demo\"\ndescription = \"A demo.\"\n";
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

/// A raw tar entry: any name bytes, any type flag, optional link target.
fn entry(out: &mut Vec<u8>, name: &[u8], kind: u8, data: &[u8], link: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    {
        let old = header.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link);
        old.linkflag = [kind];
    }
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn finish(mut tar: Vec<u8>) -> Vec<u8> {
    tar.extend_from_slice(&[0; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// A valid payload plus extra raw entries.
fn payload_with(extra: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut tar = Vec::new();
    entry(&mut tar, b"plugin.toml", b'0', MANIFEST.as_bytes(), b"");
    entry(&mut tar, b"plugin.wasm", b'0', COMPONENT, b"");
    extra(&mut tar);
    finish(tar)
}

fn refused(payload: &[u8]) -> String {
    let err = read_payload(payload, &PackageLimits::default()).expect_err("must be refused");
    err.to_string()
}

#[test]
fn a_plain_package_reads() {
    let payload = payload_with(|t| entry(t, b"assets/rules.yaml", b'0', b"rules: []", b""));
    let pkg = read_payload(&payload, &PackageLimits::default()).unwrap();
    assert_eq!(pkg.manifest.id.as_str(), "demo");
    assert_eq!(pkg.component, COMPONENT);
    assert_eq!(pkg.files.len(), 3);
}

#[test]
fn zip_slip_path_is_refused() {
    for (name, want) in [
        (&b"../evil.sh"[..], "`..` path component (path traversal)"),
        (b"assets/../../evil", "`..` path component (path traversal)"),
        (b"assets/./x", "empty or `.` path component"),
        (b"assets//x", "empty or `.` path component"),
    ] {
        match read_payload(
            &payload_with(|t| entry(t, name, b'0', b"x", b"")),
            &PackageLimits::default(),
        ) {
            Err(PackageError::BadEntry { entry, reason }) => {
                assert_eq!(reason, want);
                assert_eq!(entry.as_bytes(), name);
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(name)),
        }
    }
}

#[test]
fn absolute_path_is_refused() {
    let msg = refused(&payload_with(|t| {
        entry(t, b"/etc/cron.d/evil", b'0', b"x", b"")
    }));
    assert!(msg.contains("absolute"), "{msg}");
    let msg = refused(&payload_with(|t| entry(t, b"C:\\evil", b'0', b"x", b"")));
    assert!(msg.contains("absolute or non-portable"), "{msg}");
}

#[test]
fn symlink_is_refused() {
    let msg = refused(&payload_with(|t| {
        entry(t, b"assets/passwd", b'2', b"", b"/etc/passwd")
    }));
    assert!(msg.contains("symbolic link"), "{msg}");
}

#[test]
fn hardlink_is_refused() {
    let msg = refused(&payload_with(|t| {
        entry(t, b"assets/passwd", b'1', b"", b"/etc/passwd")
    }));
    assert!(msg.contains("hard link"), "{msg}");
}

#[test]
fn device_entry_is_refused() {
    for (kind, want) in [
        (b'3', "a device; packages hold only regular files"),
        (b'4', "a device; packages hold only regular files"),
        (b'6', "a FIFO; packages hold only regular files"),
    ] {
        match read_payload(
            &payload_with(|t| entry(t, b"assets/dev", kind, b"", b"")),
            &PackageLimits::default(),
        ) {
            Err(PackageError::BadEntry { reason, .. }) => assert_eq!(reason, want),
            other => panic!("{}: {other:?}", kind as char),
        }
    }
}

#[test]
fn duplicate_entry_names_are_refused() {
    let msg = refused(&payload_with(|t| {
        entry(t, b"plugin.wasm", b'0', b"other", b"")
    }));
    assert!(msg.contains("duplicate"), "{msg}");
    let msg = refused(&payload_with(|t| {
        entry(t, b"PLUGIN.wasm", b'0', b"other", b"")
    }));
    assert!(
        msg.contains("duplicate"),
        "case-folded duplicates too: {msg}"
    );
}

#[test]
fn decompression_bomb_is_cut_off() {
    // 30 MiB of zeros: every header check passes (entry and total size under their caps),
    // so only the decompression cap (100:1 of the payload) can stop it, while reading.
    let zeros = vec![0u8; 30 << 20];
    let payload = payload_with(|t| entry(t, b"assets/bomb", b'0', &zeros, b""));
    assert!(
        (payload.len() as u64) * 100 < 30 << 20,
        "over the 100:1 ratio: {}",
        payload.len()
    );
    match read_payload(&payload, &PackageLimits::default()) {
        Err(PackageError::TooLarge(m)) => assert!(m.contains("decompression bomb"), "{m}"),
        other => panic!("{other:?}"),
    }
    // One entry announcing more than the entry cap is refused by its header alone.
    let zeros = vec![0u8; 200 << 20];
    let payload = payload_with(|t| entry(t, b"assets/bomb", b'0', &zeros, b""));
    match read_payload(&payload, &PackageLimits::default()) {
        Err(PackageError::TooLarge(m)) => {
            assert!(
                m.starts_with("entry `assets/bomb` is 209715200 bytes"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ten_thousand_tiny_entries_are_refused() {
    let payload = payload_with(|t| {
        for i in 0..10_000 {
            entry(t, format!("assets/{i}").as_bytes(), b'0', b"x", b"");
        }
    });
    let msg = refused(&payload);
    assert!(msg.contains("more than 1000 entries"), "{msg}");
}

#[test]
fn oversized_manifest_is_refused() {
    let mut tar = Vec::new();
    let big = format!("{MANIFEST}# {}\n", "x".repeat(300 << 10));
    entry(&mut tar, b"plugin.toml", b'0', big.as_bytes(), b"");
    entry(&mut tar, b"plugin.wasm", b'0', COMPONENT, b"");
    match read_payload(&finish(tar), &PackageLimits::default()) {
        Err(PackageError::TooLarge(m)) => {
            assert!(
                m.starts_with("manifest is ") && m.contains("the limit is"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stray_files_and_missing_parts_are_refused() {
    let msg = refused(&payload_with(|t| {
        entry(t, b"install.sh", b'0', b"rm -rf /", b"")
    }));
    assert!(msg.contains("not allowed in a package"), "{msg}");
    let mut tar = Vec::new();
    entry(&mut tar, b"plugin.toml", b'0', MANIFEST.as_bytes(), b"");
    let msg = refused(&finish(tar));
    assert!(msg.contains("no such file"), "{msg}");
    let mut tar = Vec::new();
    entry(&mut tar, b"plugin.wasm", b'0', COMPONENT, b"");
    let msg = refused(&finish(tar));
    assert!(msg.contains("no plugin.toml"), "{msg}");
}

#[test]
fn invalid_utf8_and_malformed_manifest_are_refused() {
    let msg = refused(&payload_with(|t| {
        entry(t, b"assets/\xff\xfe", b'0', b"x", b"")
    }));
    assert!(msg.contains("UTF-8"), "{msg}");
    let mut tar = Vec::new();
    entry(&mut tar, b"plugin.toml", b'0', b"id = [unclosed", b"");
    entry(&mut tar, b"plugin.wasm", b'0', COMPONENT, b"");
    let msg = refused(&finish(tar));
    assert!(msg.contains("manifest is invalid"), "{msg}");
}

#[test]
fn truncated_empty_and_random_files_are_refused() {
    let limits = PackageLimits::default();
    let good = assemble(&payload_with(|_| {}), &[]);
    assert!(Envelope::split(&good, &limits).is_ok());
    assert!(matches!(
        Envelope::split(&[], &limits),
        Err(PackageError::NotAPackage(_))
    ));
    use PackageError::*;
    assert!(matches!(
        Envelope::split(&good[..4], &limits),
        Err(NotAPackage(_))
    ));
    assert!(matches!(
        Envelope::split(&good[..12], &limits),
        Err(Truncated(m)) if m == "the payload length is cut off"
    ));
    assert!(matches!(
        Envelope::split(&good[..20], &limits),
        Err(Truncated(m)) if m.starts_with("the header announces")
    ));
    assert!(matches!(
        Envelope::split(&good[..good.len() / 2], &limits),
        Err(Truncated(_))
    ));
    assert!(matches!(
        Envelope::split(&good[..good.len() - 1], &limits),
        Err(Truncated(m)) if m.starts_with("the signature block")
    ));
    // A truncated payload inside a correctly framed file.
    let payload = payload_with(|_| {});
    let half = &payload[..payload.len() / 2];
    assert!(
        matches!(
            read_payload(half, &limits),
            Err(Malformed(_) | Truncated(_))
        ),
        "{:?}",
        read_payload(half, &limits)
    );
    // Random bytes, framed and unframed.
    let mut state = 0x9e3779b97f4a7c15u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    assert!(matches!(
        Envelope::split(&random, &limits),
        Err(NotAPackage(_))
    ));
    assert!(matches!(read_payload(&random, &limits), Err(Malformed(_))));
    // Trailing garbage after the signature block.
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        Envelope::split(&trailing, &limits),
        Err(Malformed(m)) if m == "1 unexpected bytes after the signature block"
    ));
}

#[test]
fn packing_is_reproducible_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin.toml"), MANIFEST).unwrap();
    std::fs::write(dir.path().join("plugin.wasm"), COMPONENT).unwrap();
    std::fs::write(dir.path().join("README.md"), "# Demo").unwrap();
    std::fs::create_dir_all(dir.path().join("assets/rules")).unwrap();
    std::fs::write(dir.path().join("assets/rules/a.yaml"), "a: 1").unwrap();
    std::fs::write(dir.path().join("scratch.txt"), "not packed").unwrap();
    let first = pack_dir(dir.path()).unwrap();
    // Touch every file: new mtimes must not change the bytes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for f in [
        "plugin.toml",
        "plugin.wasm",
        "README.md",
        "assets/rules/a.yaml",
    ] {
        let p = dir.path().join(f);
        let data = std::fs::read(&p).unwrap();
        std::fs::write(&p, data).unwrap();
    }
    let second = pack_dir(dir.path()).unwrap();
    assert_eq!(first, second, "same inputs, same bytes");
    let env = Envelope::split(&first, &PackageLimits::default()).unwrap();
    assert!(env.signatures.is_empty());
    let pkg = read_payload(env.payload, &PackageLimits::default()).unwrap();
    let names: Vec<&str> = pkg.files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "README.md",
            "assets/rules/a.yaml",
            "plugin.toml",
            "plugin.wasm"
        ]
    );
    assert_eq!(pkg.digest, env.digest());

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("assets/passwd")).unwrap();
        let err = pack_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("symlinks are not followed"), "{err}");
    }
}

/// The valid payload's tar, before gzip.
fn plain_tar() -> Vec<u8> {
    let mut tar = Vec::new();
    entry(&mut tar, b"plugin.toml", b'0', MANIFEST.as_bytes(), b"");
    entry(&mut tar, b"plugin.wasm", b'0', COMPONENT, b"");
    tar
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn not_canonical(payload: &[u8]) -> String {
    match read_payload(payload, &PackageLimits::default()) {
        Err(PackageError::NotCanonical(reason)) => reason,
        other => panic!("expected not-canonical, got {other:?}"),
    }
}

#[test]
fn only_canonical_payload_bytes_are_read() {
    let good = finish(plain_tar());
    read_payload(&good, &PackageLimits::default()).expect("the canonical form reads");

    // Bytes after the gzip stream: a reader that stops at the first member never sees them.
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"appended after signing");
    assert!(not_canonical(&trailing).contains("after the end of the gzip stream"));
    // A second gzip member after the first.
    let mut two = good.clone();
    two.extend_from_slice(&gzip(b"second member"));
    assert!(not_canonical(&two).contains("after the end of the gzip stream"));

    // A wrong CRC-32 or length in the gzip trailer.
    for at in [good.len() - 8, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        assert!(
            not_canonical(&bad).contains("checksum or length"),
            "byte {at}"
        );
    }

    // Data after the tar end-of-archive marker, inside the gzip stream.
    let mut tar = plain_tar();
    tar.extend_from_slice(&[0; 1024]);
    tar.extend_from_slice(b"hidden after the end of the archive");
    assert!(not_canonical(&gzip(&tar)).contains("after the tar end-of-archive marker"));
    let mut padded = plain_tar();
    padded.extend_from_slice(&[0; 10240]);
    assert!(not_canonical(&gzip(&padded)).contains("after the tar end-of-archive marker"));

    // No end-of-archive marker, or half of it.
    assert!(not_canonical(&gzip(&plain_tar())).contains("does not end with"));
    let mut half = plain_tar();
    half.extend_from_slice(&[0; 512]);
    assert!(not_canonical(&gzip(&half)).contains("does not end with"));
}

#[test]
fn packages_this_crate_writes_are_canonical() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin.toml"), MANIFEST).unwrap();
    std::fs::write(dir.path().join("plugin.wasm"), COMPONENT).unwrap();
    let package = pack_dir(dir.path()).expect("pack checks its output with the reader");
    let envelope = Envelope::split(&package, &PackageLimits::default()).unwrap();
    read_payload(envelope.payload, &PackageLimits::default()).expect("and it reads again");
}
