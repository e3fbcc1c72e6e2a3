//! The registry's store on a real SQLite file and blob directory.

use secflow_manifest::{Format, Manifest};
use secflow_registry::{
    Grant, InstallMode, InstallOutcome, NewVersion, Registry, RegistryError, RunRecord,
};

fn manifest(id: &str, version: &str, deps: &str) -> Manifest {
    let text = format!(
        "id = \"{id}\"\nversion = \"{version}\"\nkind = \"action\"\nname = \"{id}\"\ndescription = \"test\"\n[dependencies]\n{deps}\n"
    );
    Manifest::parse(text.as_bytes(), Format::Toml, "test").unwrap()
}

/// A package file: the registry frames and hashes it but never parses the payload.
fn package(payload: &[u8]) -> (Vec<u8>, String) {
    (
        secflow_package::assemble(payload, b""),
        secflow_package::payload_digest(payload),
    )
}

fn grant(m: &Manifest, digest: &str) -> Grant {
    Grant {
        plugin_id: m.id.to_string(),
        version: m.version.to_string(),
        digest: digest.to_string(),
        signers: vec!["k1".into()],
        capabilities: m.capabilities.clone(),
        mounts: Default::default(),
        approval: "--yes".into(),
        approved_by: "test".into(),
        approved_at: "now".into(),
        pending: false,
        dev: false,
    }
}

async fn put(
    reg: &mut Registry,
    m: &Manifest,
    payload: &[u8],
    mode: InstallMode,
    expected: Option<(&str, &str)>,
) -> Result<InstallOutcome, RegistryError> {
    let (file, digest) = package(payload);
    reg.install(
        NewVersion {
            package_file: &file,
            manifest: m,
            digest: digest.clone(),
            signers: Vec::new(),
            grant: grant(m, &digest),
            enable: true,
            expected: expected.map(|(v, d)| (v.to_string(), d.to_string())),
        },
        mode,
    )
    .await
}

#[tokio::test]
async fn versions_are_immutable_upgrades_move_forward_and_stale_callers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(dir.path()).await.unwrap();
    let v1 = manifest("p", "1.0.0", "");
    let v2 = manifest("p", "2.0.0", "");
    let d1 = package(b"one").1;
    assert_eq!(
        put(&mut reg, &v1, b"one", InstallMode::Install, None)
            .await
            .unwrap(),
        InstallOutcome::Installed
    );
    assert_eq!(
        put(&mut reg, &v1, b"one", InstallMode::Install, None)
            .await
            .unwrap(),
        InstallOutcome::Unchanged
    );
    // A caller that computed its grant before this install is refused.
    let stale = put(
        &mut reg,
        &v2,
        b"two",
        InstallMode::Upgrade { allow_older: false },
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(stale, RegistryError::Changed(_)), "{stale}");
    let up = put(
        &mut reg,
        &v2,
        b"two",
        InstallMode::Upgrade { allow_older: false },
        Some(("1.0.0", &d1)),
    )
    .await
    .unwrap();
    assert_eq!(
        up,
        InstallOutcome::Upgraded {
            from: "1.0.0".into()
        }
    );
    let d2 = package(b"two").1;
    let older = put(
        &mut reg,
        &v1,
        b"one",
        InstallMode::Upgrade { allow_older: false },
        Some(("2.0.0", &d2)),
    )
    .await
    .unwrap_err();
    assert!(matches!(older, RegistryError::NotNewer { .. }), "{older}");
    let other = put(
        &mut reg,
        &v1,
        b"one, edited",
        InstallMode::Upgrade { allow_older: true },
        Some(("2.0.0", &d2)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(other, RegistryError::DigestConflict { .. }),
        "{other}"
    );
    let versions = reg.versions("p").await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version.as_str(), v.active))
            .collect::<Vec<_>>(),
        [("2.0.0", true), ("1.0.0", false)]
    );
    assert!(reg.check().await.unwrap().is_empty());
    // Reopening sees the same state.
    drop(reg);
    let mut reg = Registry::open(dir.path()).await.unwrap();
    assert_eq!(reg.require("p").await.unwrap().version, "2.0.0");
    reg.uninstall("p").await.unwrap();
    assert!(reg.list().await.unwrap().is_empty());
    assert!(matches!(
        reg.uninstall("p").await.unwrap_err(),
        RegistryError::NotInstalled(_)
    ));
}

#[tokio::test]
async fn dependencies_are_checked_inside_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(dir.path()).await.unwrap();
    let app = manifest("app", "1.0.0", "base = \"^1\"");
    let err = put(&mut reg, &app, b"app", InstallMode::Install, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("install base first"), "{err}");
    assert!(reg.list().await.unwrap().is_empty(), "nothing stored");
    put(
        &mut reg,
        &manifest("base", "1.2.0", ""),
        b"base",
        InstallMode::Install,
        None,
    )
    .await
    .unwrap();
    put(&mut reg, &app, b"app", InstallMode::Install, None)
        .await
        .unwrap();
    let err = reg.uninstall("base").await.unwrap_err();
    assert!(err.to_string().contains("uninstall app first"), "{err}");
}

#[tokio::test]
async fn stats_average_and_p95_and_violations() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(dir.path()).await.unwrap();
    let m = manifest("p", "1.0.0", "");
    put(&mut reg, &m, b"p", InstallMode::Install, None)
        .await
        .unwrap();
    // 1..=100 ms: average 50.5 ms, nearest-rank p95 95 ms.
    for ms in 1..=100u64 {
        let violation = ms > 98;
        let n = reg
            .record_run(&RunRecord {
                plugin_id: "p",
                version: "1.0.0",
                duration_us: ms * 1000,
                outcome: if violation { "timeout" } else { "ok" },
                violation,
            })
            .await
            .unwrap();
        assert_eq!(n, ms.saturating_sub(98));
    }
    let stats = reg.stats("p").await.unwrap();
    assert_eq!(stats.executions, 100);
    assert_eq!(stats.errors, 2);
    assert_eq!(stats.violations, 2);
    assert_eq!(stats.avg_ms, Some(50.5));
    assert_eq!(stats.p95_ms, Some(95.0));
    assert_eq!(stats.last_outcome.as_deref(), Some("timeout"));
    reg.quarantine("p", "too many").await.unwrap();
    assert!(reg.require("p").await.unwrap().quarantined);
    reg.release("p").await.unwrap();
    let p = reg.require("p").await.unwrap();
    assert!(!p.quarantined && p.violations == 0);
}

#[tokio::test]
async fn runs_are_totalled_and_their_window_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(dir.path()).await.unwrap();
    let m = manifest("p", "1.0.0", "");
    put(&mut reg, &m, b"p", InstallMode::Install, None)
        .await
        .unwrap();
    // 12,500 runs in batches: every 5th an error, a violation in the last batch.
    let mut n = 0u64;
    for batch in 0..25 {
        let runs: Vec<RunRecord<'_>> = (0..500)
            .map(|i| {
                let violation = batch == 24 && i == 499;
                RunRecord {
                    plugin_id: "p",
                    version: "1.0.0",
                    duration_us: 1000,
                    outcome: if violation || i % 5 == 0 {
                        "timeout"
                    } else {
                        "ok"
                    },
                    violation,
                }
            })
            .collect();
        let counts = reg.record_runs(&runs).await.unwrap();
        n += counts.len() as u64;
        assert_eq!(*counts.last().unwrap(), u64::from(batch == 24));
    }
    let stats = reg.stats("p").await.unwrap();
    assert_eq!(stats.executions, n);
    assert_eq!(stats.errors, 2501);
    assert_eq!(stats.violations, 1);
    assert_eq!(stats.avg_ms, Some(1.0));
    // The window of single runs stays bounded: at most 10,000 + 1,000 rows.
    let db = dir.path().join("runs.db");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        db.display()
    ))
    .await
    .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!((10_000..=11_000).contains(&rows), "{rows} rows kept");
}

/// A `registry.db` as SecFlow wrote it before `runs.db`: runs (and totals, if `totals`)
/// in the registry file.
async fn old_registry(dir: &std::path::Path, totals: bool) {
    let db = dir.join("registry.db");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}?mode=rwc",
        db.display()
    ))
    .await
    .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE runs (seq INTEGER PRIMARY KEY, plugin_id TEXT NOT NULL,
             version TEXT NOT NULL, time TEXT NOT NULL, duration_us INTEGER NOT NULL,
             outcome TEXT NOT NULL, violation INTEGER NOT NULL);
         INSERT INTO runs (plugin_id, version, time, duration_us, outcome, violation) VALUES
             ('old', '1.0.0', '2026-01-01T00:00:00Z', 10, 'ok', 0),
             ('old', '1.0.0', '2026-01-01T00:00:01Z', 10, 'ok', 0),
             ('old', '1.0.0', '2026-01-01T00:00:02Z', 10, 'timeout', 1);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    if totals {
        // Totals that count more than the window holds (trimmed runs).
        sqlx::raw_sql(
            "CREATE TABLE run_totals (plugin_id TEXT PRIMARY KEY NOT NULL,
                 executions INTEGER NOT NULL, errors INTEGER NOT NULL,
                 violations INTEGER NOT NULL, last_run TEXT NOT NULL, last_outcome TEXT NOT NULL);
             INSERT INTO run_totals VALUES ('old', 5000, 40, 1, '2026-01-01T00:00:02Z', 'timeout');",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn runs_of_an_older_registry_move_to_their_own_file_once() {
    for (totals, expected) in [(false, (3, 1, 1)), (true, (5000, 40, 1))] {
        let dir = tempfile::tempdir().unwrap();
        old_registry(dir.path(), totals).await;
        let mut reg = Registry::open(dir.path()).await.unwrap();
        let stats = reg.stats("old").await.unwrap();
        assert_eq!((stats.executions, stats.errors, stats.violations), expected);
        assert_eq!(stats.last_outcome.as_deref(), Some("timeout"));
        assert_eq!(stats.avg_ms, Some(0.01));
        drop(reg);
        // Opened again: nothing moved twice.
        let mut reg = Registry::open(dir.path()).await.unwrap();
        assert_eq!(reg.stats("old").await.unwrap().executions, expected.0);
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
            "sqlite://{}",
            dir.path().join("registry.db").display()
        ))
        .await
        .unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('runs', 'run_totals')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(left, 0, "the old tables are dropped from registry.db");
    }
}

#[tokio::test]
async fn clean_runs_leave_the_registry_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(dir.path()).await.unwrap();
    put(
        &mut reg,
        &manifest("p", "1.0.0", ""),
        b"x",
        InstallMode::Install,
        None,
    )
    .await
    .unwrap();
    let stamp = |name: &str| secflow_io::FileStamp::of(&dir.path().join(name));
    let before = (stamp("registry.db"), stamp("registry.db-wal"));
    let run = |violation| RunRecord {
        plugin_id: "p",
        version: "1.0.0",
        duration_us: 10,
        outcome: if violation { "timeout" } else { "ok" },
        violation,
    };
    let clean: Vec<_> = (0..100).map(|_| run(false)).collect();
    reg.record_runs(&clean).await.unwrap();
    assert_eq!((stamp("registry.db"), stamp("registry.db-wal")), before);
    // A violation is registry state (the plugin's count).
    assert_eq!(reg.record_run(&run(true)).await.unwrap(), 1);
    assert_ne!((stamp("registry.db"), stamp("registry.db-wal")), before);
    assert_eq!(reg.stats("p").await.unwrap().executions, 101);
}

#[tokio::test]
async fn a_missing_or_edited_blob_is_found_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(dir.path()).await.unwrap();
    let m = manifest("p", "1.0.0", "");
    put(&mut reg, &m, b"payload", InstallMode::Install, None)
        .await
        .unwrap();
    let record = reg.active("p").await.unwrap();
    assert!(reg.package(&record).is_ok());
    let path = dir
        .path()
        .join("blobs/sha256")
        .join(&record.blob[..2])
        .join(&record.blob);
    // Edited in place.
    let original = std::fs::read(&path).unwrap();
    let mut bytes = original.clone();
    bytes[20] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let problems = reg.check().await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("was modified on disk"), "{problems:?}");
    assert!(matches!(
        reg.package(&record),
        Err(secflow_registry::RegistryError::Blob { reason, .. }) if reason.contains("modified on disk")
    ));
    // Replaced by another valid package under this blob's name: the content address
    // catches it before the payload digest is even looked at.
    let (other, _) = package(b"another payload");
    std::fs::write(&path, &other).unwrap();
    match reg.package(&record) {
        Err(secflow_registry::RegistryError::Blob { reason, .. }) => {
            assert!(reason.contains("modified on disk"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, &original).unwrap();
    assert!(reg.check().await.unwrap().is_empty());
    // Missing.
    std::fs::remove_file(&path).unwrap();
    let problems = reg.check().await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("cannot read"), "{problems:?}");
    // A leftover blob without a row is swept.
    let (orphan, _) = package(b"orphan");
    secflow_registry::blobs::BlobStore::new(dir.path().join("blobs"))
        .put(&orphan)
        .unwrap();
    assert_eq!(reg.sweep().await.unwrap(), 1);
}
