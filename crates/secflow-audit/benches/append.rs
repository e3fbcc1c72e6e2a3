//! Audit append throughput: hash chaining, Merkle update and a durable SQLite commit
//! (WAL, `synchronous=FULL`) per batch, at several batch sizes, on a real file.
//!
//! ```sh
//! cargo bench -p secflow-audit --bench append
//! ```
//! Prints a table of events per second; the figures go to BENCHMARKS.md.

use ed25519_dalek::SigningKey;
use secflow_audit::{AuditLog, Event, PluginRef};
use std::time::Instant;

fn event(i: u64) -> Event {
    Event {
        actor: "scan".into(),
        action: "plugin.invoke".into(),
        plugin: Some(PluginRef {
            id: "secrets-detector".into(),
            version: "0.1.0".into(),
            digest: "5e".repeat(32),
        }),
        decision: Some("ok".into()),
        reason: String::new(),
        details: serde_json::json!({
            "duration_us": 1200 + i % 97,
            "fuel": null,
            "peak_memory_bytes": 3_145_728,
            "files": 64,
        }),
    }
}

fn main() {
    concurrent_single_appends();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| batch size (events per durable commit) | events | time | events/s |");
    println!("|---|---|---|---|");
    for (batch, total) in [(1u64, 300u64), (10, 3_000), (100, 50_000), (1000, 200_000)] {
        let dir = tempfile::tempdir().unwrap();
        let log = rt
            .block_on(AuditLog::open(
                &dir.path().join("audit.db"),
                SigningKey::from_bytes(&[7; 32]),
            ))
            .unwrap();
        let started = Instant::now();
        let mut i = 0;
        while i < total {
            let events: Vec<Event> = (i..i + batch).map(event).collect();
            rt.block_on(log.append_batch(events)).unwrap();
            i += batch;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {batch} | {total} | {:.2} s | {:.0} |",
            secs,
            total as f64 / secs
        );
        let report = rt.block_on(log.verify(&log.public_key(), None)).unwrap();
        assert_eq!(report.entries, total);
        if total == 200_000 {
            drop(log);
            reopen_costs(&rt, &dir.path().join("audit.db"));
        }
    }
}

/// Opening a large log (every CLI command that records events does): from the stored
/// frontier, against the baseline of rebuilding it from every event's hash.
fn reopen_costs(rt: &tokio::runtime::Runtime, db: &std::path::Path) {
    use sqlx::Connection;
    let open = || {
        let started = Instant::now();
        let log = rt
            .block_on(AuditLog::open(db, SigningKey::from_bytes(&[7; 32])))
            .unwrap();
        let took = started.elapsed();
        drop(log);
        took
    };
    let best = |f: &dyn Fn() -> std::time::Duration| (0..5).map(|_| f()).min().unwrap();
    let stored = best(&open);
    let rebuilt = best(&|| {
        rt.block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            sqlx::raw_sql("DELETE FROM audit_head")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        });
        open()
    });
    println!();
    println!("| opening the log of 200,000 events (best of 5) | time |");
    println!("|---|---|");
    println!("| rebuilding the Merkle frontier from every event (baseline) | {rebuilt:.2?} |");
    println!("| from the stored frontier | {stored:.2?} |");
    println!(
        "| ratio | {:.0}x |",
        rebuilt.as_secs_f64() / stored.as_secs_f64()
    );
}

/// Group commit: `callers` tasks each appending single events at once, against one caller
/// appending them one by one (one fsync each), in the same run.
fn concurrent_single_appends() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("| single-event appends | events | time | events/s |");
    println!("|---|---|---|---|");
    let mut rates = Vec::new();
    for callers in [1u64, 64] {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(
            rt.block_on(AuditLog::open(
                &dir.path().join("audit.db"),
                SigningKey::from_bytes(&[7; 32]),
            ))
            .unwrap(),
        );
        let per_caller = 6_400 / callers;
        let started = Instant::now();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for c in 0..callers {
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..per_caller {
                        log.append(event(c * per_caller + i)).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        let secs = started.elapsed().as_secs_f64();
        let total = per_caller * callers;
        rates.push(total as f64 / secs);
        println!(
            "| {callers} caller(s) at once | {total} | {secs:.2} s | {:.0} |",
            total as f64 / secs
        );
        let report = rt.block_on(log.verify(&log.public_key(), None)).unwrap();
        assert_eq!(report.entries, total);
    }
    println!(
        "\ngroup commit: 64 callers / 1 caller = {:.1}x\n",
        rates[1] / rates[0]
    );
}
