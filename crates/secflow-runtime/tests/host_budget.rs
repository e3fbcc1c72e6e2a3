//! Everything the host keeps or writes on a plugin's behalf is counted against a limit.
//! Each test drives one host import of the hostile plugin past its budget and asserts the
//! typed error, that it counts as a violation, what the report says, and that the next
//! invocation works. Host RSS is measured on a child `secflow` process in the CLI tests
//! (`crates/secflow-cli/tests/host_limits.rs`); here the host's own accounting is checked.

mod common;

use common::*;
use secflow_runtime::InvokeError;
use serde_json::json;
use std::path::Path;

/// The hostile plugin with roomier logs than the base caps, so each cap can be hit alone.
const ROOMY: &str = r#"
[[capabilities.network]]
host = "allowed.example.com"
reason = "the granted host used by the network attack tests"
[capabilities.kv]
reason = "checks that the store is private to the plugin"
max-kib = 64
[limits]
memory-mib = 64
timeout-ms = 5000
log-kib = 1024
log-lines = 100
"#;

async fn drive(
    rt: &secflow_runtime::Runtime,
    p: &secflow_runtime::Plugin,
    import: &str,
    count: u64,
    bytes: u64,
    extra: serde_json::Value,
) -> secflow_runtime::Invocation {
    let mut params = json!({"import": import, "count": count, "bytes": bytes});
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    exec(rt, p, "drive", params).await
}

fn assert_violation(inv: &secflow_runtime::Invocation, kind: &str, needle: &str) {
    let e = err(inv);
    assert_eq!(e.kind(), kind, "{e}");
    assert!(e.is_violation(), "{kind} counts toward quarantine");
    assert!(e.to_string().contains(needle), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_are_capped_and_empty_lines_are_not_free() {
    let rt = runtime();
    let p = load_hostile(&rt, ROOMY);
    let inv = drive(&rt, &p, "log", 1000, 0, json!({})).await;
    assert_violation(&inv, "log-limit", "more than 100 lines");
    assert_eq!(inv.logs.len(), 100);
    assert_eq!(inv.report.host.budget.log_lines, 100);
    assert_eq!(inv.report.host.budget.log_bytes, 100 * 64);
    // With the base caps (16 KiB), 256 empty lines fill the byte budget on their own.
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = drive(&rt, &p, "log", 1000, 0, json!({})).await;
    assert_violation(&inv, "log-limit", "each line costs");
    assert_eq!(inv.logs.len(), (16 << 10) / 64);
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_huge_log_line_is_refused_before_it_is_copied() {
    let rt = runtime();
    let p = load_hostile(&rt, ROOMY);
    let inv = drive(&rt, &p, "log", 1, 8 << 20, json!({})).await;
    assert_violation(&inv, "log-limit", "would take");
    assert!(inv.logs.is_empty());
    assert_eq!(inv.report.host.budget.log_bytes, 0, "nothing was kept");
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn log_fields_count() {
    let rt = runtime();
    let p = load_hostile(&rt, ROOMY);
    let inv = drive(&rt, &p, "log-fields", 1, 1000, json!({})).await;
    assert_violation(&inv, "log-limit", "structured fields");
    let inv = drive(&rt, &p, "log-fields", 1, 32, json!({})).await;
    assert!(inv.outcome.is_ok(), "{:?}", inv.outcome);
    assert_eq!(inv.logs[0].fields.len(), 32);
    // Each field is charged: 64 for the line + 5 for "fields" + 32 x (16 + key).
    let keys: u64 = (0..32).map(|f: u64| format!("f{f}").len() as u64).sum();
    assert_eq!(inv.report.host.budget.log_bytes, 64 + 6 + 32 * 16 + keys);
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_capped_by_series_samples_labels_and_sizes() {
    let rt = runtime();
    let p = load_hostile(&rt, ROOMY);
    let cases = [
        ("metric", 1000, 0, "distinct metric series"),
        ("metric-repeat", 20_000, 0, "more than 10000 metric samples"),
        ("metric-labels", 1, 17, "labels"),
        ("metric", 1, 300, "-byte value"),
    ];
    for (import, count, bytes, needle) in cases {
        let inv = drive(&rt, &p, import, count, bytes, json!({})).await;
        assert_violation(&inv, "metric-limit", needle);
        let u = inv.report.host.budget;
        assert!(
            u.metric_series <= 256 && u.metric_samples <= 10_000,
            "{u:?}"
        );
        assert!(u.metric_bytes <= 1 << 20, "{u:?}");
        assert_eq!(inv.metrics.len() as u64, u.metric_samples);
    }
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stderr_flood_is_a_violation_too() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = drive(&rt, &p, "stderr", 100, 1000, json!({})).await;
    assert_violation(&inv, "log-limit", "stderr");
    let last = inv.logs.last().unwrap();
    assert_eq!(last.level, "stderr");
    assert!(last.message.contains("cut here"), "{}", last.message);
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_quota_and_oversized_values_are_kv_limit_even_when_the_plugin_carries_on() {
    let kv_dir = tempfile::tempdir().unwrap();
    let rt = runtime_with(secflow_runtime::RuntimeConfig {
        kv_dir: Some(kv_dir.path().to_path_buf()),
        ..Default::default()
    });
    let p = load_hostile(&rt, ROOMY);
    // 64 KiB quota, 1 KiB values: the plugin gets quota-exceeded and stops; the invocation
    // still fails with kv-limit (the plugin itself returned Ok with its count).
    let inv = drive(&rt, &p, "kv", 1000, 1000, json!({})).await;
    assert_violation(&inv, "kv-limit", "limit 65536 bytes");
    // A value larger than the whole quota, refused before it is copied.
    let inv = drive(&rt, &p, "kv", 1, 32 << 20, json!({})).await;
    assert_violation(&inv, "kv-limit", "store");
    // The database holds at most the quota's worth of entries; SQLite's write-ahead log
    // and its index add a bounded amount (the log is checkpointed every 64 pages and
    // truncated to 256 KiB).
    let store_size: u64 = walk(kv_dir.path()).1;
    assert!(
        store_size < (64 << 10) * 2 + (512 << 10),
        "the store stayed small: {store_size}"
    );
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_from_the_plugin_is_invalid_output() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    for action in ["invalid-utf8-output", "invalid-utf8-log"] {
        let inv = exec(&rt, &p, action, json!({})).await;
        assert_violation(&inv, "invalid-output", "UTF-8");
    }
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_64_mib_output_maximum_is_reachable() {
    let rt = runtime();
    let caps = ROOMY
        .replace("memory-mib = 64", "memory-mib = 512\noutput-kib = 65536")
        .replace("timeout-ms = 5000", "timeout-ms = 60000");
    let p = load_hostile(&rt, &caps);
    let bytes = (64 << 20) - 1024;
    let inv = exec(&rt, &p, "huge-output", json!({"bytes": bytes})).await;
    match &inv.outcome {
        Ok(secflow_runtime::Output::Json(serde_json::Value::String(s))) => {
            assert_eq!(s.len(), bytes)
        }
        other => panic!("expected the 64 MiB string back, got {other:?}"),
    }
    let inv = exec(&rt, &p, "huge-output", json!({"bytes": 65 << 20})).await;
    assert_violation(&inv, "output-too-large", "returned value");
    assert_next_invocation_works(&rt, &p).await;
}

/// Bytes and entries under `dir`, without following links.
fn walk(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        files += 1;
        if meta.is_dir() {
            let (f, b) = walk(&entry.path());
            files += f;
            bytes += b;
        } else if meta.is_file() {
            bytes += meta.len();
        }
    }
    (files, bytes)
}

/// A writable `/out` and a read-only `/data`, each a fresh temporary directory.
struct Dirs {
    out: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs {
            out: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
        }
    }

    fn mounts(&self) -> Vec<(String, std::path::PathBuf)> {
        vec![
            ("/out".to_string(), self.out.path().to_path_buf()),
            ("/data".to_string(), self.data.path().to_path_buf()),
        ]
    }
}

fn out_caps(limits: &str) -> String {
    format!(
        "{HOSTILE_BASE_CAPS}{limits}\n[[capabilities.filesystem]]\npath = \"/out\"\naccess = \"write\"\nreason = \"writes its report files\"\n\
         [[capabilities.filesystem]]\npath = \"/data\"\nreason = \"reads the rule files\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writable_grant_never_holds_more_than_its_byte_quota() {
    let dirs = Dirs::new();
    let out = &dirs.out;
    let rt = runtime();
    let mounts = dirs.mounts();
    let p = load_hostile_with(&rt, &out_caps("write-mib = 1"), &mounts);
    let inv = drive(&rt, &p, "fs-bytes", 1000, 64 << 10, json!({"dir": "/out"})).await;
    assert_violation(&inv, "fs-quota", "/out");
    let (_, bytes) = walk(out.path());
    assert!(bytes <= 1 << 20, "{bytes} bytes on disk");
    assert!(
        bytes > (1 << 20) - (64 << 10),
        "filled up to the last whole write: {bytes}"
    );
    assert_eq!(inv.report.host.fs_bytes_written, bytes);
    // The quota holds across invocations: the next one cannot add a byte.
    let inv = drive(&rt, &p, "fs-bytes", 1, 64 << 10, json!({"dir": "/out"})).await;
    assert_violation(&inv, "fs-quota", "/out");
    assert_eq!(walk(out.path()).1, bytes);
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writable_grant_never_holds_more_than_its_file_quota() {
    let dirs = Dirs::new();
    let out = &dirs.out;
    let rt = runtime();
    let mounts = dirs.mounts();
    let p = load_hostile_with(&rt, &out_caps("write-files = 10"), &mounts);
    let inv = drive(&rt, &p, "fs-files", 100, 0, json!({"dir": "/out"})).await;
    assert_violation(&inv, "fs-quota", "more than 10 files");
    assert_eq!(walk(out.path()).0, 10);
    assert_eq!(inv.report.host.fs_files_created, 10);
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_may_only_point_inside_the_grant_and_hard_links_are_refused() {
    let dirs = Dirs::new();
    let (out, data) = (&dirs.out, &dirs.data);
    std::fs::write(data.path().join("rules.txt"), "rule-1").unwrap();
    std::fs::write(out.path().join("mine.txt"), "mine").unwrap();
    let rt = runtime();
    let mounts = dirs.mounts();
    let p = load_hostile_with(&rt, &out_caps(""), &mounts);
    for target in ["/etc/passwd", "../../etc/passwd", "sub/../../x"] {
        let inv = exec(
            &rt,
            &p,
            "symlink",
            json!({"target": target, "link": "/out/evil"}),
        )
        .await;
        assert_violation(&inv, "capability-denied", "symlink");
        assert!(
            out.path().join("evil").symlink_metadata().is_err(),
            "{target}"
        );
    }
    let inv = exec(
        &rt,
        &p,
        "symlink",
        json!({"target": "mine.txt", "link": "/out/ok"}),
    )
    .await;
    assert_eq!(ok_json(&inv), json!("linked"));
    assert_eq!(
        std::fs::read_link(out.path().join("ok")).unwrap(),
        Path::new("mine.txt")
    );
    // A hard link of a read-only file into the writable grant would make it writable.
    for (from, to) in [
        ("/data/rules.txt", "/out/rules.txt"),
        ("/out/mine.txt", "/out/again.txt"),
    ] {
        let inv = exec(&rt, &p, "hard-link", json!({"from": from, "to": to})).await;
        assert_violation(&inv, "capability-denied", "hard link");
    }
    assert!(!out.path().join("rules.txt").exists());
    assert!(!out.path().join("again.txt").exists());
    // Renaming onto a read-only grant is a denial.
    let inv = exec(
        &rt,
        &p,
        "rename",
        json!({"from": "/out/mine.txt", "to": "/data/mine.txt"}),
    )
    .await;
    assert_violation(&inv, "capability-denied", "read-only");
    assert!(out.path().join("mine.txt").exists());
    assert!(!data.path().join("mine.txt").exists());
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rename_between_two_writable_grants_is_cross_device_not_a_quota_bypass() {
    let (a, b, data) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    std::fs::write(a.path().join("big"), vec![0; 1000]).unwrap();
    let rt = runtime();
    let caps = format!(
        "{}\n[[capabilities.filesystem]]\npath = \"/out2\"\naccess = \"write\"\nreason = \"a second output directory\"\n",
        out_caps("write-mib = 1")
    );
    let mounts = vec![
        ("/out".to_string(), a.path().to_path_buf()),
        ("/out2".to_string(), b.path().to_path_buf()),
        ("/data".to_string(), data.path().to_path_buf()),
    ];
    let p = load_hostile_with(&rt, &caps, &mounts);
    let inv = exec(
        &rt,
        &p,
        "rename",
        json!({"from": "/out/big", "to": "/out2/big"}),
    )
    .await;
    match err(&inv) {
        InvokeError::Plugin { error } => {
            assert!(
                format!("{error:?}").to_lowercase().contains("cross"),
                "{error:?}"
            )
        }
        other => panic!("expected the plugin's own cross-device error, got {other:?}"),
    }
    assert!(a.path().join("big").exists() && !b.path().join("big").exists());
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writing_to_a_read_only_grant_is_capability_denied_even_if_the_plugin_carries_on() {
    let dirs = Dirs::new();
    let data = &dirs.data;
    std::fs::write(data.path().join("rules.txt"), "rule-1").unwrap();
    let rt = runtime();
    let mounts = dirs.mounts();
    let p = load_hostile_with(&rt, &out_caps(""), &mounts);
    // `drive` swallows the error and returns Ok with how far it got; the host still fails
    // the invocation with the typed denial.
    let inv = drive(&rt, &p, "fs-files", 1, 0, json!({"dir": "/data"})).await;
    assert_violation(&inv, "capability-denied", "read-only");
    assert!(
        inv.report.denials.iter().any(|d| d.contains("/data")),
        "{:?}",
        inv.report.denials
    );
    assert_eq!(walk(data.path()).0, 1, "nothing was created");
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_invocations_writing_distinct_keys_lose_nothing() {
    let kv_dir = tempfile::tempdir().unwrap();
    let rt = runtime_with(secflow_runtime::RuntimeConfig {
        kv_dir: Some(kv_dir.path().to_path_buf()),
        max_concurrent_per_plugin: 16,
        max_concurrent: 32,
        ..Default::default()
    });
    let p = std::sync::Arc::new(load_hostile(&rt, ROOMY));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (rt, p, barrier) = (rt.clone(), p.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                exec(
                    &rt,
                    &p,
                    "kv-set",
                    json!({"key": format!("key-{i}"), "value": format!("v{i}")}),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        let inv = t.await.unwrap();
        assert_eq!(ok_json(&inv), json!("set"));
    }
    for i in 0..16 {
        let inv = exec(&rt, &p, "kv-get", json!({"key": format!("key-{i}")})).await;
        assert_eq!(ok_json(&inv), json!(format!("v{i}")), "key-{i} survived");
    }
    assert_next_invocation_works(&rt, &p).await;
}

mod property {
    //! Random sequences of host imports with random sizes: whatever the plugin does, the
    //! host's accounting stays within every cap, a cap crossed is a typed violation, and
    //! the next invocation works.
    use super::*;
    use proptest::prelude::*;

    fn step() -> impl Strategy<Value = (String, u64, u64)> {
        (
            prop_oneof![
                Just("log"),
                Just("log-fields"),
                Just("metric"),
                Just("metric-repeat"),
                Just("metric-labels"),
                Just("stdout"),
                Just("stderr"),
                Just("kv"),
                Just("fs-bytes"),
                Just("fs-files"),
            ],
            0u64..300,
            prop_oneof![0u64..64, 0u64..4096, 0u64..(256 << 10)],
        )
            .prop_map(|(i, c, b)| (i.to_string(), c, b))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn random_import_sequences_stay_within_every_cap(steps in prop::collection::vec(step(), 1..6)) {
            let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
            tokio.block_on(async {
                let dirs = Dirs::new();
                let out = &dirs.out;
                let kv_dir = tempfile::tempdir().unwrap();
                let rt = runtime_with(secflow_runtime::RuntimeConfig {
                    kv_dir: Some(kv_dir.path().to_path_buf()),
                    ..Default::default()
                });
                let mounts = dirs.mounts();
                let caps = out_caps("write-mib = 1\nwrite-files = 50")
                    .replace("[capabilities.kv]", "[capabilities.kv]\nmax-kib = 256");
                let p = load_hostile_with(&rt, &caps, &mounts);
                let steps: Vec<serde_json::Value> =
                    steps.iter().map(|(i, c, b)| json!([i, c, b])).collect();
                let inv = exec(&rt, &p, "sequence", json!({"steps": steps, "dir": "/out"})).await;
                let h = inv.report.host;
                let limits = p.limits;
                prop_assert!(h.budget.log_lines <= limits.log_lines);
                prop_assert!(h.budget.log_bytes <= limits.log_bytes);
                prop_assert!(h.budget.metric_samples <= 10_000 && h.budget.metric_series <= 256);
                prop_assert!(h.budget.metric_bytes <= 1 << 20);
                let kept: usize = inv.logs.iter().filter(|l| l.level == "stdout").map(|l| l.message.len() + 1).sum();
                prop_assert!(kept <= (limits.log_bytes as usize) + 200, "kept {} of stdout", kept);
                let (files, bytes) = walk(out.path());
                prop_assert!(bytes <= 1 << 20, "{} bytes in /out", bytes);
                prop_assert!(files <= 50, "{} files in /out", files);
                if let Err(e) = &inv.outcome {
                    prop_assert!(
                        e.is_violation(),
                        "a failure is a typed violation, not {:?}", e
                    );
                }
                let next = exec(&rt, &p, "noop", json!({})).await;
                prop_assert_eq!(ok_json(&next), json!("ok"));
                Ok(())
            })?;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_through_a_dangling_symlink_counts_the_new_file() {
    let dirs = Dirs::new();
    let rt = runtime();
    let p = load_hostile_with(&rt, &out_caps("write-files = 2"), &dirs.mounts());
    let link = exec(&rt, &p, "symlink", json!({"target": "b", "link": "/out/a"})).await;
    assert_eq!(ok_json(&link), json!("linked"));
    // Opening `a` with O_CREAT follows the link and creates `b`: the second entry.
    let through = exec(
        &rt,
        &p,
        "write-file",
        json!({"path": "/out/a", "content": "x"}),
    )
    .await;
    assert_eq!(ok_json(&through), json!("written"));
    assert!(dirs.out.path().join("b").is_file());
    let third = exec(
        &rt,
        &p,
        "write-file",
        json!({"path": "/out/c", "content": "x"}),
    )
    .await;
    assert_violation(&third, "fs-quota", "more than 2 files");
    assert_eq!(walk(dirs.out.path()).0, 2);
    assert_next_invocation_works(&rt, &p).await;
}
