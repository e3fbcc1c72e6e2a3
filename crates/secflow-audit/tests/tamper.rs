//! The audit log against an attacker with write access to the database file: every edit,
//! deletion, reordering, truncation and forged checkpoint is caught and the first bad entry
//! named; the database itself refuses UPDATE and DELETE.

use ed25519_dalek::SigningKey;
use secflow_audit::{AuditError, AuditLog, Checkpoint, Event, Filter, PluginRef};
use sqlx::{Connection, SqliteConnection};
use std::path::Path;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn event(i: u32) -> Event {
    Event {
        actor: "test".into(),
        action: if i.is_multiple_of(2) {
            "plugin.invoke".into()
        } else {
            "policy.decision".into()
        },
        plugin: Some(PluginRef {
            id: format!("plugin-{}", i % 3),
            version: "1.0.0".into(),
            digest: "ab".repeat(32),
        }),
        decision: Some("allow".into()),
        reason: format!("event {i}"),
        details: serde_json::json!({ "i": i, "fuel": 1000 + i }),
    }
}

async fn log_with(path: &Path, n: u32) -> AuditLog {
    let log = AuditLog::open(path, key(7)).await.unwrap();
    log.append_batch((1..=n).map(event).collect())
        .await
        .unwrap();
    log
}

/// Tampering the way an attacker with the sqlite3 shell would: drop the guard triggers,
/// then change rows.
async fn tamper(path: &Path, sql: &'static str) {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete;
         DROP TRIGGER IF EXISTS audit_checkpoints_no_update; DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

async fn verify_err(path: &Path, external: Option<&Checkpoint>) -> (Option<u64>, String) {
    let log = AuditLog::open(path, key(7)).await.unwrap();
    match log.verify(&key(7).verifying_key(), external).await {
        Err(AuditError::Tampered { seq, message }) => (seq, message),
        other => panic!("expected tampering to be detected, got {other:?}"),
    }
}

#[tokio::test]
async fn an_intact_log_verifies_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let log = log_with(&db, 25).await;
    let cp = log.checkpoint().await.unwrap();
    assert_eq!(cp.tree_size, 25);
    cp.verify_signature(&key(7).verifying_key()).unwrap();
    let report = log
        .verify(&key(7).verifying_key(), Some(&cp))
        .await
        .unwrap();
    assert_eq!(report.entries, 25);
    assert_eq!(report.root, cp.root);
    drop(log);

    // Reopened, it continues the same chain and tree.
    let log = AuditLog::open(&db, key(7)).await.unwrap();
    let e = log.append(event(26)).await.unwrap();
    assert_eq!(e.seq, 26);
    let report = log
        .verify(&key(7).verifying_key(), Some(&cp))
        .await
        .unwrap();
    assert_eq!(report.entries, 26);
    assert_eq!(report.checkpoints, 1);

    let only = log
        .entries(&Filter {
            plugin: Some("plugin-1".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert!(
        only.iter()
            .all(|e| e.event.plugin.as_ref().unwrap().id == "plugin-1")
    );
    assert_eq!(only.len(), 9);
    let tail = log
        .entries(&Filter {
            after_seq: Some(24),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![25, 26]);
}

#[tokio::test]
async fn the_database_refuses_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    drop(log_with(&db, 3).await);
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_events SET reason = 'nothing happened' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 3",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}

#[tokio::test]
async fn an_edited_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    drop(log_with(&db, 10).await);
    tamper(
        &db,
        "UPDATE audit_events SET decision = 'deny' WHERE seq = 4",
    )
    .await;
    let (seq, message) = verify_err(&db, None).await;
    assert_eq!(seq, Some(4), "{message}");
    assert!(
        message.contains("#4") && message.contains("edited"),
        "{message}"
    );
}

#[tokio::test]
async fn a_deleted_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    drop(log_with(&db, 10).await);
    tamper(&db, "DELETE FROM audit_events WHERE seq = 6").await;
    let (seq, message) = verify_err(&db, None).await;
    assert_eq!(seq, Some(6), "{message}");
    assert!(message.contains("missing"), "{message}");
}

#[tokio::test]
async fn swapped_rows_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    drop(log_with(&db, 10).await);
    // Swap the contents of entries 3 and 4, keeping the sequence numbers in place.
    tamper(
        &db,
        "CREATE TEMP TABLE t AS SELECT * FROM audit_events WHERE seq IN (3, 4);
         UPDATE audit_events SET (time, actor, action, plugin_id, plugin_version, plugin_digest, decision, reason, details, prev_hash, hash)
           = (SELECT time, actor, action, plugin_id, plugin_version, plugin_digest, decision, reason, details, prev_hash, hash FROM t WHERE t.seq = 7 - audit_events.seq)
           WHERE seq IN (3, 4);",
    )
    .await;
    let (seq, message) = verify_err(&db, None).await;
    assert_eq!(seq, Some(3), "{message}");
}

#[tokio::test]
async fn truncation_is_caught_against_a_checkpoint_kept_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let log = log_with(&db, 12).await;
    let kept = log.checkpoint().await.unwrap();
    drop(log);
    // Cut the last entries and the stored checkpoint that would reveal it.
    tamper(
        &db,
        "DELETE FROM audit_events WHERE seq > 9; DELETE FROM audit_checkpoints;",
    )
    .await;
    let log = AuditLog::open(&db, key(7)).await.unwrap();
    // Without the kept checkpoint, a clean cut is indistinguishable from a shorter log...
    log.verify(&key(7).verifying_key(), None).await.unwrap();
    // ...with it, it is caught and the first missing entry named.
    let (seq, message) = verify_err(&db, Some(&kept)).await;
    assert_eq!(seq, Some(10), "{message}");
    assert!(message.contains("truncated"), "{message}");
}

#[tokio::test]
async fn a_rewritten_log_and_forged_checkpoints_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let log = log_with(&db, 8).await;
    let kept = log.checkpoint().await.unwrap();
    drop(log);

    // A consistent rewrite (valid hashes and chain, different history) of the same size.
    let other = dir.path().join("other.db");
    let fake = AuditLog::open(&other, key(7)).await.unwrap();
    fake.append_batch((100..108).map(event).collect())
        .await
        .unwrap();
    let (seq, message) = match fake.verify(&key(7).verifying_key(), Some(&kept)).await {
        Err(AuditError::Tampered { seq, message }) => (seq, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(seq, None);
    assert!(message.contains("checkpoint at size 8"), "{message}");

    // A checkpoint of the very same tree (same size and root), signed by another key: only
    // the key check can refuse it.
    let log = AuditLog::open(&db, key(7)).await.unwrap();
    let sign_as = |signer: &SigningKey, claimed: &SigningKey| {
        use ed25519_dalek::Signer;
        let mut cp = kept.clone();
        cp.key_id = secflow_audit::key_id(&claimed.verifying_key());
        cp.signature = hex::encode(signer.sign(cp.signed_text().as_bytes()).to_bytes());
        cp
    };
    let other_key = sign_as(&key(9), &key(9));
    match log.verify(&key(7).verifying_key(), Some(&other_key)).await {
        Err(AuditError::Tampered { seq: None, message }) => assert!(
            message.contains(&format!(
                "was signed by key {}",
                secflow_audit::key_id(&key(9).verifying_key())
            )),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    // ... and one that claims the host's key id but is signed by another key.
    let claims_host_key = sign_as(&key(9), &key(7));
    match log
        .verify(&key(7).verifying_key(), Some(&claims_host_key))
        .await
    {
        Err(AuditError::Tampered { seq: None, message }) => assert_eq!(
            message,
            "checkpoint at size 8: the signature does not verify (forged or altered)"
        ),
        other => panic!("{other:?}"),
    }

    // The kept checkpoint with its time altered: the signature no longer verifies.
    let mut altered = kept.clone();
    altered.time = "2030-01-01T00:00:00Z".into();
    match log.verify(&key(7).verifying_key(), Some(&altered)).await {
        Err(AuditError::Tampered { seq: None, message }) => assert_eq!(
            message,
            "checkpoint at size 8: the signature does not verify (forged or altered)"
        ),
        other => panic!("{other:?}"),
    }
    log.verify(&key(7).verifying_key(), Some(&kept))
        .await
        .unwrap();
}

#[tokio::test]
async fn reopening_continues_from_the_stored_frontier_and_a_bad_one_is_rebuilt_or_caught() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    // Reopened between batches whose sizes cross powers of two: each handle starts from the
    // stored frontier, and every checkpoint it signs matches the tree `verify` recomputes.
    let mut n = 0u32;
    for batch in [1u32, 2, 1, 4, 9, 15, 32] {
        let log = AuditLog::open(&db, key(7)).await.unwrap();
        log.append_batch((n + 1..=n + batch).map(event).collect())
            .await
            .unwrap();
        n += batch;
        assert_eq!(log.checkpoint().await.unwrap().tree_size, u64::from(n));
    }
    let log = AuditLog::open(&db, key(7)).await.unwrap();
    let report = log.verify(&key(7).verifying_key(), None).await.unwrap();
    assert_eq!((report.entries, report.checkpoints), (64, 7));
    drop(log);

    // An unreadable stored frontier is rebuilt from the events.
    tamper(&db, "UPDATE audit_head SET roots = 'not-hex'").await;
    let log = AuditLog::open(&db, key(7)).await.unwrap();
    log.append(event(65)).await.unwrap();
    log.checkpoint().await.unwrap();
    let report = log.verify(&key(7).verifying_key(), None).await.unwrap();
    assert_eq!((report.entries, report.checkpoints), (65, 8));
    drop(log);

    // A well-formed forged frontier (right size and last hash, wrong roots) is used, but the
    // checkpoint signed over it disagrees with the events, and `verify` says so.
    tamper(
        &db,
        "UPDATE audit_head SET roots = printf('%s,%s', hex(randomblob(32)), hex(randomblob(32)))",
    )
    .await;
    let log = AuditLog::open(&db, key(7)).await.unwrap();
    log.append(event(66)).await.unwrap();
    log.checkpoint().await.unwrap();
    match log.verify(&key(7).verifying_key(), None).await {
        Err(AuditError::Tampered { message, .. }) => {
            assert!(message.contains("checkpoint at size 66"), "{message}")
        }
        other => panic!("a forged frontier went unnoticed: {other:?}"),
    }
}

#[tokio::test]
async fn two_handles_appending_in_turn_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let a = AuditLog::open(&db, key(7)).await.unwrap();
    let b = AuditLog::open(&db, key(7)).await.unwrap();
    for i in 0..5 {
        a.append(event(i)).await.unwrap();
        b.append_batch(vec![event(100 + i), event(200 + i)])
            .await
            .unwrap();
    }
    let report = a.verify(&key(7).verifying_key(), None).await.unwrap();
    assert_eq!(report.entries, 15);
    let cp_a = a.checkpoint().await.unwrap();
    let cp_b = b.checkpoint().await.unwrap();
    assert_eq!(cp_a.root, cp_b.root);
}

#[test]
fn hostile_checkpoint_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("empty.json", ""),
        ("junk.json", "\u{0}\u{1}garbage"),
        (
            "extra.json",
            r#"{"origin":"x","tree-size":1,"root":"","time":"","key-id":"","signature":"","evil":1}"#,
        ),
        (
            "negative.json",
            r#"{"origin":"x","tree-size":-1,"root":"","time":"","key-id":"","signature":""}"#,
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let err = Checkpoint::read(&path).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("checkpoint"), "{err}");
    }
    let cp = Checkpoint {
        origin: "secflow-audit".into(),
        tree_size: 1,
        root: "00".repeat(32),
        time: "t".into(),
        key_id: secflow_audit::key_id(&key(7).verifying_key()),
        signature: "zz".into(),
    };
    assert_eq!(
        cp.verify_signature(&key(7).verifying_key()),
        Err("checkpoint at size 1: malformed signature".to_string())
    );
}

/// Group commit: 64 callers appending at once share commits, and each caller's batch stays
/// contiguous and in order; the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_and_keep_each_batch_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let log = std::sync::Arc::new(AuditLog::open(&path, key(7)).await.unwrap());
    let mut tasks = Vec::new();
    for caller in 0..64u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for round in 0..5u32 {
                let batch: Vec<Event> = (0..3)
                    .map(|k| event(caller * 1000 + round * 10 + k))
                    .collect();
                let entries = log.append_batch(batch).await.unwrap();
                assert_eq!(entries.len(), 3);
                assert!(
                    entries.windows(2).all(|w| w[1].seq == w[0].seq + 1),
                    "contiguous"
                );
                for (k, e) in entries.iter().enumerate() {
                    assert_eq!(
                        e.event.reason,
                        format!("event {}", caller * 1000 + round * 10 + k as u32)
                    );
                }
                seqs.push(entries[0].seq);
            }
            seqs
        }));
    }
    let mut firsts = Vec::new();
    for t in tasks {
        firsts.extend(t.await.unwrap());
    }
    firsts.sort_unstable();
    firsts.dedup();
    assert_eq!(firsts.len(), 64 * 5, "no two batches got the same place");
    let report = log.verify(&log.public_key(), None).await.unwrap();
    assert_eq!(report.entries, 64 * 5 * 3);
}
