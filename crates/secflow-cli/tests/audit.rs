//! `secflow audit` as users run it: scans write audit events, `audit verify` proves the log
//! intact, and names the entry after someone edits the database behind its back.

use sqlx::{Connection, SqliteConnection};
mod common;

use common::{all_text as text, run};
use std::path::Path;

/// What an attacker with the sqlite3 shell does: drop the guard trigger, change rows.
fn tamper(db: &Path, sql: &'static str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        });
}

#[test]
fn scans_are_audited_and_tampering_is_named() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(
        target.path().join("app.py"),
        "import hashlib\nh = hashlib.md5(password.encode()).hexdigest()\n",
    )
    .unwrap();
    let t = target.path().to_str().unwrap();
    for _ in 0..2 {
        let out = run(h, &["scan", t, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    let out = run(h, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("intact"), "{}", text(&out));

    let out = run(h, &["audit", "log", "--json", "--plugin", "code-patterns"]);
    assert_eq!(out.status.code(), Some(0));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "one plugin.invoke per scan");
    assert_eq!(events[0]["action"], "plugin.invoke");
    assert_eq!(events[0]["plugin"]["id"], "code-patterns");
    assert_eq!(events[0]["details"]["findings"], 1);
    assert!(events[0]["plugin"]["digest"].as_str().unwrap().len() == 64);

    // A checkpoint kept elsewhere.
    let kept = h.join("kept-checkpoint.json");
    let out = run(h, &["audit", "checkpoint", "-o", kept.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(
        h,
        &["audit", "verify", "--checkpoint", kept.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // An edited row: exit 3, the entry named.
    let db = h.join("audit.db");
    tamper(
        &db,
        "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET decision = 'ok', reason = 'nothing to see' WHERE seq = 3;",
    );
    let out = run(h, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("entry #3"), "{}", text(&out));
}

#[test]
fn truncation_is_caught_with_a_kept_checkpoint() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("a.txt"), "hello\n").unwrap();
    for _ in 0..2 {
        let out = run(h, &["scan", target.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let kept = h.join("kept.json");
    assert!(
        run(h, &["audit", "checkpoint", "-o", kept.to_str().unwrap()])
            .status
            .success()
    );
    let n = {
        let out = run(h, &["audit", "log", "--json"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert!(n > 4);
    tamper(
        &h.join("audit.db"),
        "DROP TRIGGER audit_events_no_delete; DROP TRIGGER audit_checkpoints_no_delete;
         DELETE FROM audit_events WHERE seq > 3; DELETE FROM audit_checkpoints;",
    );
    let out = run(
        h,
        &["audit", "verify", "--checkpoint", kept.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("truncated after entry #3"),
        "{}",
        text(&out)
    );

    // A checkpoint file that is not one: a usage error naming it.
    std::fs::write(h.join("junk.json"), "{}").unwrap();
    let out = run(
        h,
        &[
            "audit",
            "verify",
            "--checkpoint",
            h.join("junk.json").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("junk.json"), "{}", text(&out));
}

#[test]
fn stats_summarise_violations_verifications_and_trust_changes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // A sandbox violation: a dev detector that loops on one file hits its deadline.
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("spin.txt"), "LOOP-NOW\n").unwrap();
    std::fs::write(target.path().join("ok.txt"), "TEST-FINDING\n").unwrap();
    let plugin = tempfile::tempdir().unwrap();
    let a = secflow_plugin_artifacts::TEST_DETECTOR;
    std::fs::copy(
        Path::new(a.dir).join("plugin.toml"),
        plugin.path().join("plugin.toml"),
    )
    .unwrap();
    std::fs::copy(a.component, plugin.path().join("test_detector.wasm")).unwrap();
    let out = run(
        h,
        &[
            "scan",
            target.path().to_str().unwrap(),
            "--dev",
            plugin.path().to_str().unwrap(),
            "--plugin",
            "test-detector",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    // A refused verification and a trust change.
    std::fs::write(h.join("junk.sfpkg"), b"not a package").unwrap();
    let out = run(
        h,
        &["plugin", "verify", h.join("junk.sfpkg").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        run(h, &["key", "generate", "--name", "pub"])
            .status
            .success()
    );
    assert!(run(h, &["trust", "add", "pub"]).status.success());

    let out = run(h, &["stats", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["sandbox_violations"], 1, "{s:#}");
    assert_eq!(s["verification_failures"], 1, "{s:#}");
    assert_eq!(s["plugins_loaded"], 1, "{s:#}");
    assert_eq!(s["events_by_action"]["trust.add"], 1, "{s:#}");
    assert_eq!(s["last_event"]["action"], "trust.add");
    assert!(run(h, &["audit", "verify"]).status.success());
    let out = run(h, &["audit", "log", "--json"]);
    let violation = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["action"] == "sandbox.violation")
        .unwrap();
    assert_eq!(violation["decision"], "timeout");
    assert_eq!(violation["plugin"]["id"], "test-detector");
    assert_eq!(violation["details"]["file"], "spin.txt");
}

#[test]
fn a_scan_that_fails_is_still_audited() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("a.py"), "x = 1\n").unwrap();
    // A config the plugin's schema refuses: the scan stops at the health check, after the
    // plugins were selected and loaded.
    let out = run(
        h,
        &[
            "scan",
            target.path().to_str().unwrap(),
            "--config",
            "secrets-detector.disabled-rules=42",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let log = run(h, &["audit", "log", "--json"]);
    assert_eq!(log.status.code(), Some(0), "{}", text(&log));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "scan.run" && e["decision"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert!(
        failed[0]["details"]["error"]
            .as_str()
            .unwrap()
            .contains("disabled-rules"),
        "{:?}",
        failed[0]
    );
}

#[test]
fn an_audit_log_that_cannot_be_written_fails_the_scan() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Something in the way of the database: it cannot be opened, whoever runs the test.
    std::fs::create_dir_all(h.join("audit.db")).unwrap();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("a.py"), "x = 1\n").unwrap();
    let out = run(
        h,
        &["scan", target.path().to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // With --format json the error is the JSON document on stdout, and there is no report.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("audit events could not be recorded"),
        "{doc}"
    );
    assert!(
        doc.get("findings").is_none(),
        "no report without its audit trail"
    );
}
