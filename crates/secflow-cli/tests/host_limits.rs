//! A plugin with the default 64 MiB memory limit drives every host import far past its
//! budget through the real `secflow run --dev`, each in a child process. For each one the
//! test checks and prints the typed error, the child's peak RSS (`VmHWM`, reported by
//! `secflow run --report --json`) and how much it grew over a no-op run, and the disk the
//! plugin made the host use. Bounds: RSS growth at most 2 x the memory limit + 16 MiB, an
//! absolute peak near 150 MiB, and disk growth at most the quota.
//!
//! Run with `--nocapture` to see the table.

mod common;

use common::*;
use std::path::Path;

const MIB: u64 = 1 << 20;
const MEMORY_LIMIT: u64 = 64 * MIB;
/// The manifest's kv quota and write quota for this test.
const KV_QUOTA: u64 = 4 * MIB;
const WRITE_QUOTA: u64 = 16 * MIB;
const WRITE_FILES: u64 = 1000;

/// The hostile plugin with the default memory limit and the largest log budget a manifest
/// may ask for, so the host holds as much as it ever could.
fn manifest() -> String {
    format!(
        r#"id = "test-hostile"
version = "0.1.0"
kind = "action"
name = "Hostile"
description = "Drives every host import past its budget."

[[capabilities.network]]
host = "allowed.example.com"
reason = "the granted host used by the network attack tests"

[[capabilities.filesystem]]
path = "/out"
access = "write"
reason = "the writable grant the disk attacks fill"

[capabilities.kv]
reason = "the store the kv attacks fill"
max-kib = {kv_kib}

[limits]
timeout-ms = 60000
log-kib = 4096
log-lines = 100000
write-mib = {write_mib}
write-files = {WRITE_FILES}
"#,
        kv_kib = KV_QUOTA >> 10,
        write_mib = WRITE_QUOTA >> 20,
    )
}

/// Bytes under `dir` (files only, links not followed).
fn disk(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let path = e.unwrap().path();
            let meta = path.symlink_metadata().unwrap();
            if meta.is_dir() {
                disk(&path)
            } else {
                meta.len()
            }
        })
        .sum()
}

struct Outcome {
    kind: String,
    peak_rss: u64,
}

fn run(home: &Path, dir: &Path, out: &Path, action: &str, params: serde_json::Value) -> Outcome {
    let mut cmd = secflow(home);
    cmd.args(["run", "--dev"])
        .arg(dir)
        .args([
            "--action", action, "--input", "-", "--report", "--json", "--mount",
        ])
        .arg(format!("/out={}", out.display()));
    let output = run_with_stdin(cmd, params.to_string().as_bytes());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{action}: {e}\nstdout: {}\nstderr: {}",
            text(&output.stdout),
            text(&output.stderr)
        )
    });
    let kind = doc["error"]["kind"].as_str().unwrap_or("ok").to_string();
    let expected_code = if kind == "ok" { 0 } else { 4 };
    assert_eq!(code(&output), expected_code, "{action}: {doc}");
    Outcome {
        kind,
        peak_rss: doc["host"]["peak_rss_bytes"]
            .as_u64()
            .expect("Linux reports VmHWM"),
    }
}

#[test]
fn no_host_import_lets_a_64_mib_plugin_grow_the_host_or_the_disk_past_its_limits() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = plugin_dir(
        root.path(),
        "hostile",
        &manifest(),
        secflow_plugin_artifacts::TEST_HOSTILE.component,
    );
    let kv_dir = home.path().join("kv");
    // Compile once (the cache) and measure a run that does nothing.
    run(home.path(), &dir, out.path(), "noop", serde_json::json!({}));
    let baseline = run(home.path(), &dir, out.path(), "noop", serde_json::json!({}));
    assert_eq!(baseline.kind, "ok");

    let drive = |import: &str, count: u64, bytes: u64| serde_json::json!({"import": import, "count": count, "bytes": bytes, "dir": "/out"});
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, serde_json::Value, &str)> = vec![
        ("host.log: 200k empty lines", "drive", drive("log", 200_000, 0), "log-limit"),
        ("host.log: one 16 MiB line", "drive", drive("log", 1, 16 * MIB), "log-limit"),
        ("host.log: 1000 fields", "drive", drive("log-fields", 1, 1000), "log-limit"),
        ("metrics: 100k series", "drive", drive("metric", 100_000, 200), "metric-limit"),
        ("metrics: 100k samples", "drive", drive("metric-repeat", 100_000, 0), "metric-limit"),
        ("stdout: 400 MiB", "drive", drive("stdout", 100_000, 4096), "log-limit"),
        ("stderr: 400 MiB", "drive", drive("stderr", 100_000, 4096), "log-limit"),
        ("kv: 10k x 4 KiB values", "drive", drive("kv", 10_000, 4096), "kv-limit"),
        ("kv: one 40 MiB value", "drive", drive("kv", 1, 40 * MIB), "kv-limit"),
        ("output: 12 MiB", "huge-output", serde_json::json!({"bytes": 12 * MIB}), "output-too-large"),
        ("fs: 10k x 64 KiB writes", "drive", drive("fs-bytes", 10_000, 64 << 10), "fs-quota"),
        ("fs: 100k files", "drive", drive("fs-files", 100_000, 0), "fs-quota"),
        ("memory: unbounded alloc", "alloc", serde_json::json!({}), "memory-limit"),
    ];
    let bound = 2 * MEMORY_LIMIT + 16 * MIB;
    println!(
        "\n{:<28} {:<16} {:>10} {:>12} {:>12}",
        "host import", "typed error", "peak RSS", "RSS growth", "disk growth"
    );
    println!(
        "{:<28} {:<16} {:>7} MiB {:>12} {:>12}",
        "(no-op baseline)",
        "-",
        baseline.peak_rss / MIB,
        "-",
        "-"
    );
    let mut failures = Vec::new();
    for (name, action, params, expected) in cases {
        let disk_before = disk(out.path()) + disk(&kv_dir);
        let got = run(home.path(), &dir, out.path(), action, params);
        let disk_growth = (disk(out.path()) + disk(&kv_dir)).saturating_sub(disk_before);
        let growth = got.peak_rss.saturating_sub(baseline.peak_rss);
        println!(
            "{name:<28} {:<16} {:>7} MiB {:>8} MiB {:>8} KiB",
            got.kind,
            got.peak_rss / MIB,
            growth / MIB,
            disk_growth >> 10
        );
        if got.kind != expected {
            failures.push(format!("{name}: expected {expected}, got {}", got.kind));
        }
        if growth > bound {
            failures.push(format!(
                "{name}: RSS grew {} MiB > {} MiB",
                growth / MIB,
                bound / MIB
            ));
        }
        if got.peak_rss > 160 * MIB {
            failures.push(format!(
                "{name}: peak RSS {} MiB > 160 MiB",
                got.peak_rss / MIB
            ));
        }
        // The kv quota counts entries (key + value + 32 bytes); on disk SQLite adds page
        // slack (a quarter at most for values that fill pages) and a write-ahead log
        // truncated to 256 KiB.
        let disk_bound = match expected {
            "fs-quota" => WRITE_QUOTA,
            "kv-limit" => KV_QUOTA + KV_QUOTA / 4 + 512 * 1024,
            _ => 0,
        };
        if disk_growth > disk_bound {
            failures.push(format!(
                "{name}: disk grew {disk_growth} B > {disk_bound} B"
            ));
        }
        // Clean the grant between the two fs attacks so each starts from empty.
        if expected == "fs-quota" {
            std::fs::remove_dir_all(out.path()).unwrap();
            std::fs::create_dir(out.path()).unwrap();
        }
    }
    assert!(
        disk(out.path()) <= WRITE_QUOTA,
        "the grant holds at most its quota"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
