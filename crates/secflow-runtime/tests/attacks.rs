//! Attacks on the sandbox. Each test runs a real malicious component, asserts the typed error
//! it gets, and checks the next invocation still works (the host is unharmed).

mod common;

use common::*;
use secflow_runtime::InvokeError;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn attack_infinite_loop_with_host_calls_times_out() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "loop", json!({})).await;
    assert!(
        matches!(err(&inv), InvokeError::Timeout { limit_ms: 1000 }),
        "{:?}",
        inv.outcome
    );
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_busy_loop_without_calls_times_out() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "spin", json!({})).await;
    assert!(
        matches!(err(&inv), InvokeError::Timeout { .. }),
        "{:?}",
        inv.outcome
    );
    assert!(
        inv.report.wall_time_us < 3_000_000,
        "stopped near the 1 s deadline"
    );
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_busy_loop_runs_out_of_fuel_when_metered() {
    let rt = runtime();
    let caps = HOSTILE_BASE_CAPS.replace("log-kib = 16", "log-kib = 16\nfuel = 5000000");
    let p = load_hostile(&rt, &caps);
    let inv = exec(&rt, &p, "spin", json!({})).await;
    assert!(
        matches!(err(&inv), InvokeError::OutOfFuel { limit: 5000000 }),
        "{:?}",
        inv.outcome
    );
    assert_eq!(inv.report.fuel_used, Some(5000000));
    let ok = exec(&rt, &p, "noop", json!({})).await;
    assert!(ok.report.fuel_used.unwrap() > 0, "metered runs report fuel");
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_unbounded_memory_grow_is_stopped() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "grow", json!({})).await;
    match err(&inv) {
        InvokeError::MemoryLimit { limit, requested } => {
            assert_eq!(*limit, 32 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected memory-limit, got {other:?}"),
    }
    assert!(inv.report.peak_memory_bytes <= 32 << 20);
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_unbounded_allocation_is_stopped() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "alloc", json!({})).await;
    assert!(
        matches!(err(&inv), InvokeError::MemoryLimit { .. }),
        "{:?}",
        inv.outcome
    );
    assert_next_invocation_works(&rt, &p).await;
}

/// Runs a recursing action and expects `stack-overflow`, then a working next invocation.
async fn assert_overflows(rt: &secflow_runtime::Runtime, action: &str) {
    let p = load_hostile(rt, HOSTILE_BASE_CAPS);
    let inv = exec(rt, &p, action, json!({})).await;
    assert!(
        matches!(err(&inv), InvokeError::StackOverflow),
        "{action}: {:?}",
        inv.outcome
    );
    assert_next_invocation_works(rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_deep_recursion_overflows_the_bounded_stack() {
    assert_overflows(&runtime(), "recurse").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_deep_recursion_overflows_the_guest_stack_in_linear_memory() {
    // A native stack far deeper than needed, so that only the guest's 128 KiB stack in linear
    // memory (frames with address-taken locals) can run out: its stack pointer wraps past
    // zero into an out-of-bounds store, reported as a stack overflow all the same.
    let rt = runtime_with(secflow_runtime::RuntimeConfig {
        max_wasm_stack: 8 << 20,
        ..Default::default()
    });
    assert_overflows(&rt, "recurse").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_deep_recursion_in_registers_overflows_the_native_stack() {
    assert_overflows(&runtime(), "recurse-in-registers").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_deep_recursion_with_large_frames_is_a_stack_overflow() {
    // 16 KiB frames overflow the 128 KiB guest stack after 8 calls: too few for a backtrace
    // to show a repeated function. The wrapped stack pointer tells it apart.
    let rt = runtime_with(secflow_runtime::RuntimeConfig {
        max_wasm_stack: 8 << 20,
        ..Default::default()
    });
    assert_overflows(&rt, "recurse-big-frames").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_local_array_larger_than_the_guest_stack_is_a_stack_overflow() {
    assert_overflows(&runtime(), "big-local").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_out_of_bounds_store_is_a_trap_not_a_stack_overflow() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "out-of-bounds", json!({})).await;
    match err(&inv) {
        InvokeError::Trap { message } => assert!(message.contains("out of bounds"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_stdout_flood_is_a_log_limit_violation_and_the_kept_text_is_marked() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "flood-stdout", json!({})).await;
    match err(&inv) {
        InvokeError::LogLimit { what, limit } => {
            assert!(what.contains("stdout"), "{what}");
            assert_eq!(*limit, 16 << 10);
        }
        other => panic!("expected log-limit, got {other:?}"),
    }
    assert!(err(&inv).is_violation());
    let stdout: Vec<&str> = inv
        .logs
        .iter()
        .filter(|l| l.level == "stdout")
        .map(|l| l.message.as_str())
        .collect();
    let (marker, kept) = stdout.split_last().unwrap();
    assert!(marker.contains("stdout cut here"), "{marker}");
    // Whole lines only: every kept line is one of the plugin's 4096-byte lines.
    assert!(!kept.is_empty());
    assert!(
        kept.iter().all(|l| l.len() == 4096),
        "ends on a line boundary"
    );
    assert!(kept.len() * 4097 <= 16 << 10);
    assert!(
        inv.report.host.stdout_bytes > 16 << 10,
        "the attempt is reported"
    );
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_host_log_flood_is_cut_off() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "flood-log", json!({})).await;
    assert!(
        matches!(err(&inv), InvokeError::LogLimit { limit, .. } if *limit == 16 << 10),
        "{:?}",
        inv.outcome
    );
    assert!(inv.report.host.budget.log_bytes <= 16 << 10);
    let kept: usize = inv.logs.iter().map(|l| l.message.len() + 64).sum();
    assert!(kept <= 16 << 10, "kept {kept} bytes");
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_huge_return_value_is_refused() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "huge-output", json!({})).await;
    assert!(
        matches!(err(&inv), InvokeError::OutputTooLarge { limit, .. } if *limit == 256 << 10),
        "{:?}",
        inv.outcome
    );
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_trap_is_reported_with_the_panic_message() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "trap", json!({})).await;
    match err(&inv) {
        InvokeError::Trap { message } => assert!(
            message.contains("deliberate trap"),
            "{message} {:?}",
            inv.logs
        ),
        other => panic!("expected trap, got {other:?}"),
    }
    assert_next_invocation_works(&rt, &p).await;
}

fn plugin_denied(inv: &secflow_runtime::Invocation) -> String {
    match err(inv) {
        InvokeError::Plugin {
            error: secflow_runtime::bindings::PluginError::Denied(msg),
        } => msg.clone(),
        other => panic!("expected the plugin's own access to fail, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_read_etc_passwd_without_grant() {
    // The probe aims at a file that is there on the host: an open sandbox would read it.
    assert!(std::path::Path::new("/etc/passwd").is_file());
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(&rt, &p, "read-file", json!({"path": "/etc/passwd"})).await;
    let msg = plugin_denied(&inv);
    assert!(
        !msg.contains("root:"),
        "no file content leaks into the error"
    );
    // Without a grant there is no preopen to resolve the path against: from inside, the
    // host's file does not exist.
    assert!(msg.contains("No such file or directory"), "{msg}");
    let inv = exec(&rt, &p, "list-dir", json!({"path": "/"})).await;
    plugin_denied(&inv);
    assert_next_invocation_works(&rt, &p).await;
}

fn granted_dir() -> (tempfile::TempDir, tempfile::TempDir) {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let granted = tempfile::tempdir().unwrap();
    std::fs::write(granted.path().join("rules.txt"), "rule-1").unwrap();
    (granted, outside)
}

fn fs_caps(access: &str) -> String {
    format!(
        "{HOSTILE_BASE_CAPS}\n[[capabilities.filesystem]]\npath = \"/data\"\naccess = \"{access}\"\nreason = \"reads rule files for the test\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_dotdot_traversal_out_of_granted_dir() {
    // The grant and the targets share one base directory, so every `..` probe resolves (on
    // the host, without a sandbox) to a file that exists.
    let base = tempfile::tempdir().unwrap();
    let granted = base.path().join("granted");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("rules.txt"), "rule-1").unwrap();
    std::fs::write(base.path().join("secret.txt"), "TOP-SECRET").unwrap();
    std::fs::create_dir(base.path().join("outside")).unwrap();
    std::fs::write(base.path().join("outside/secret.txt"), "TOP-SECRET").unwrap();
    let rt = runtime();
    let mounts = vec![("/data".to_string(), granted.clone())];
    let p = load_hostile_with(&rt, &fs_caps("read"), &mounts);
    let ok = exec(&rt, &p, "read-file", json!({"path": "/data/rules.txt"})).await;
    assert_eq!(
        ok_json(&ok),
        json!("rule-1"),
        "the granted file is readable"
    );
    let deep = format!(
        "/data/{}etc/passwd",
        "../".repeat(granted.components().count())
    );
    for path in [
        "/data/../secret.txt",
        "/data/../outside/secret.txt",
        deep.as_str(),
    ] {
        let host = granted.join(path.strip_prefix("/data/").unwrap());
        assert!(
            host.is_file(),
            "{path}: the probe must hit a real host file"
        );
        let inv = exec(&rt, &p, "read-file", json!({ "path": path })).await;
        let msg = plugin_denied(&inv);
        assert!(
            !msg.contains("TOP-SECRET") && !msg.contains("root:"),
            "{path}: {msg}"
        );
        // Refused as an escape (EPERM), not merely not found.
        assert!(msg.contains("Operation not permitted"), "{path}: {msg}");
    }
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_symlink_inside_granted_dir_pointing_outside() {
    let (granted, outside) = granted_dir();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        granted.path().join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), granted.path().join("linkdir")).unwrap();
    let rt = runtime();
    let mounts = vec![("/data".to_string(), granted.path().to_path_buf())];
    let p = load_hostile_with(&rt, &fs_caps("read"), &mounts);
    for path in ["/data/link.txt", "/data/linkdir/secret.txt"] {
        let inv = exec(&rt, &p, "read-file", json!({ "path": path })).await;
        let msg = plugin_denied(&inv);
        assert!(!msg.contains("TOP-SECRET"), "{path}: {msg}");
    }
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_write_to_read_only_grant() {
    let (granted, _outside) = granted_dir();
    let rt = runtime();
    let mounts = vec![("/data".to_string(), granted.path().to_path_buf())];
    let p = load_hostile_with(&rt, &fs_caps("read"), &mounts);
    for path in ["/data/rules.txt", "/data/new.txt"] {
        let inv = exec(
            &rt,
            &p,
            "write-file",
            json!({"path": path, "content": "pwned"}),
        )
        .await;
        // The host saw the attempt: a typed, counted denial naming the grant, not just the
        // plugin's own error.
        match err(&inv) {
            InvokeError::CapabilityDenied { capability, reason } => {
                assert_eq!(capability, "filesystem");
                assert!(
                    reason.contains("/data") && reason.contains("read-only"),
                    "{reason}"
                );
            }
            other => panic!("{path}: expected capability-denied, got {other:?}"),
        }
        assert!(err(&inv).is_violation());
    }
    assert_eq!(
        std::fs::read_to_string(granted.path().join("rules.txt")).unwrap(),
        "rule-1"
    );
    assert!(!granted.path().join("new.txt").exists());
    // The same plugin with a write grant can write: the refusal above was the grant's doing.
    let p = load_hostile_with(&rt, &fs_caps("write"), &mounts);
    let inv = exec(
        &rt,
        &p,
        "write-file",
        json!({"path": "/data/new.txt", "content": "fine"}),
    )
    .await;
    assert_eq!(ok_json(&inv), json!("written"));
    assert_eq!(
        std::fs::read_to_string(granted.path().join("new.txt")).unwrap(),
        "fine"
    );
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_read_environment_gets_nothing() {
    // The host's own environment (PATH at least) must not reach the plugin.
    let host_path = std::env::var("PATH").unwrap_or_default();
    assert!(!host_path.is_empty());
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let out = ok_json(&exec(&rt, &p, "env", json!({})).await);
    assert_eq!(out["vars"], json!([]), "no environment variables");
    assert_eq!(out["args"], json!([]), "no arguments");
    assert_eq!(out["home"], json!(null));
    assert!(!out.to_string().contains(&host_path));
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn isolation_state_from_one_invocation_is_not_visible_in_the_next() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    for _ in 0..3 {
        let out = ok_json(&exec(&rt, &p, "counter", json!({})).await);
        assert_eq!(
            out,
            json!({"counter_before": 0, "leaked_vectors": 1}),
            "fresh instance each time"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_config_violating_schema_is_refused_before_the_plugin_runs() {
    let rt = runtime();
    let caps = format!(
        "{HOSTILE_BASE_CAPS}\n[config-schema]\ntype = \"object\"\nadditionalProperties = false\n\
         [config-schema.properties.threshold]\ntype = \"integer\"\nmaximum = 10\n"
    );
    let p = load_hostile(&rt, &caps);
    let call = secflow_runtime::Call::Execute {
        action: "noop".into(),
        params: "{}".into(),
    };
    let inv = rt.invoke(&p, call.clone(), &json!({"threshold": 99})).await;
    match err(&inv) {
        InvokeError::InvalidConfig { errors } => {
            assert!(errors[0].contains("/threshold"), "{errors:?}")
        }
        other => panic!("expected invalid-config, got {other:?}"),
    }
    assert_eq!(inv.report.wall_time_us, 0, "the plugin never ran");
    let inv = rt
        .invoke(&p, call.clone(), &json!({"fail-init": true}))
        .await;
    assert!(
        matches!(err(&inv), InvokeError::InvalidConfig { .. }),
        "unknown keys are refused too"
    );
    let inv = rt.invoke(&p, call, &json!({"threshold": 3})).await;
    assert!(inv.outcome.is_ok(), "{:?}", inv.outcome);
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_component_importing_undeclared_interfaces_is_refused_at_load() {
    let rt = runtime();
    let wasm = secflow_plugin_artifacts::TEST_HOSTILE.bytes();
    // No network capability, but the component imports wasi:http.
    let no_net = hostile_manifest("[capabilities.kv]\nreason = \"checks store privacy\"\n");
    let e = rt
        .load(no_net, &wasm, secflow_runtime::Grants::none())
        .unwrap_err();
    assert!(e.is_refusal(), "{e}");
    assert!(e.to_string().contains("wasi:http/"), "{e}");
    // No kv capability, but the component imports the kv interface.
    let no_kv = hostile_manifest(
        "[[capabilities.network]]\nhost = \"allowed.example.com\"\nreason = \"network attack tests\"\n",
    );
    let e = rt
        .load(no_kv, &wasm, secflow_runtime::Grants::none())
        .unwrap_err();
    assert!(
        e.is_refusal() && e.to_string().contains("secflow:plugin/kv"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_component_of_the_wrong_kind_is_refused_at_load() {
    let rt = runtime();
    let wasm = secflow_plugin_artifacts::TEST_NOOP.bytes();
    let m = manifest(
        "id = \"test-noop\"\nversion = \"0.1.0\"\nkind = \"detector\"\nname = \"x\"\ndescription = \"x\"\n",
    );
    let e = rt
        .load(m, &wasm, secflow_runtime::Grants::none())
        .unwrap_err();
    assert!(
        matches!(e, secflow_runtime::LoadError::KindMismatch { .. })
            && e.to_string().contains("manifest says kind `detector`"),
        "{e}"
    );
    let e = rt
        .load(
            hostile_manifest(""),
            b"\0asm\x01\0\0\0",
            secflow_runtime::Grants::none(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("core WebAssembly module"), "{e}");
    let e = rt
        .load(
            hostile_manifest(""),
            b"definitely not wasm",
            secflow_runtime::Grants::none(),
        )
        .unwrap_err();
    assert!(
        matches!(e, secflow_runtime::LoadError::InvalidComponent { .. }),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_store_is_private_and_persistent() {
    let kv_dir = tempfile::tempdir().unwrap();
    let rt = runtime_with(secflow_runtime::RuntimeConfig {
        kv_dir: Some(kv_dir.path().to_path_buf()),
        ..Default::default()
    });
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let set = exec(&rt, &p, "kv-set", json!({"key": "k", "value": "v1"})).await;
    assert_eq!(ok_json(&set), json!("set"));
    let get = exec(&rt, &p, "kv-get", json!({"key": "k"})).await;
    assert_eq!(
        ok_json(&get),
        json!("v1"),
        "persists across fresh instances"
    );
    // A `--dev` grant (what `all_declared` gives) lives in the dev namespace.
    assert!(kv_dir.path().join("dev/test-hostile.sqlite").is_file());

    // Private: another plugin (the same component under another id) can neither read nor
    // overwrite it...
    let other_m = manifest(&format!(
        "id = \"test-hostile-other\"\nversion = \"0.1.0\"\nkind = \"action\"\nname = \"O\"\n\
         description = \"o\"\n{HOSTILE_BASE_CAPS}"
    ));
    let grants = secflow_runtime::Grants::all_declared(&other_m, &[]).unwrap();
    let other = rt
        .load(
            other_m,
            &secflow_plugin_artifacts::TEST_HOSTILE.bytes(),
            grants,
        )
        .unwrap();
    let read = exec(&rt, &other, "kv-get", json!({"key": "k"})).await;
    assert_eq!(
        ok_json(&read),
        json!(null),
        "not readable by another plugin"
    );
    let write = exec(&rt, &other, "kv-set", json!({"key": "k", "value": "evil"})).await;
    assert_eq!(ok_json(&write), json!("set"));
    let get = exec(&rt, &p, "kv-get", json!({"key": "k"})).await;
    assert_eq!(ok_json(&get), json!("v1"), "nor writable");
    // ... and the same id under an installed (signed) identity has a store of its own.
    let m = hostile_manifest(HOSTILE_BASE_CAPS);
    let grants = secflow_runtime::Grants::all_declared(&m, &[])
        .unwrap()
        .with_kv_namespace(secflow_runtime::KvNamespace::installed(
            "test-hostile",
            &["0123456789abcdef0123456789abcdef".into()],
        ));
    let installed = rt
        .load(m, &secflow_plugin_artifacts::TEST_HOSTILE.bytes(), grants)
        .unwrap();
    let read = exec(&rt, &installed, "kv-get", json!({"key": "k"})).await;
    assert_eq!(ok_json(&read), json!(null));
    assert_next_invocation_works(&rt, &p).await;
}
