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
    }
}
