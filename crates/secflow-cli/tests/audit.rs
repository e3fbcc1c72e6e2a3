//! `secflow audit` as users run it: scans write audit events, `audit verify` proves the log
//! intact, and names the entry after someone edits the database behind its back.

use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::process::{Command, Output};

fn secflow(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secflow"));
    cmd.env("SECFLOW_HOME", home).env_remove("SECFLOW_LOG");
    cmd
}

fn run(home: &Path, args: &[&str]) -> Output {
    secflow(home).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

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
