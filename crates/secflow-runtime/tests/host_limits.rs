//! Host-wide protections: concurrency slots per plugin, and the authenticated compile cache.

mod common;

use common::*;
use secflow_runtime::{CacheOutcome, Grants, RuntimeConfig};
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_one_plugin_flooding_invocations_cannot_starve_another() {
    let rt = runtime_with(RuntimeConfig {
        max_concurrent: 4,
        max_concurrent_per_plugin: 2,
        ..Default::default()
    });
    let hostile = Arc::new(load_hostile(&rt, HOSTILE_BASE_CAPS));
    // Eight spinning invocations: only two may hold slots at once, each for its 1 s deadline.
    let spinners: Vec<_> = (0..8)
        .map(|_| {
            let (rt, p) = (rt.clone(), hostile.clone());
            tokio::spawn(async move { exec(&rt, &p, "spin", json!({})).await })
        })
        .collect();
    // Wait until the flood holds both of its slots (state, not time: a loaded machine must
    // not let the other plugin in before the flood is there).
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while hostile.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the spinners take their slots");
    let m = manifest(
        &std::fs::read_to_string(
            std::path::Path::new(secflow_plugin_artifacts::TEST_NOOP.dir).join("plugin.toml"),
        )
        .unwrap(),
    );
    let noop = rt
        .load(
            m,
            &secflow_plugin_artifacts::TEST_NOOP.bytes(),
            Grants::none(),
        )
        .unwrap();
    let inv = exec(&rt, &noop, "echo", json!({"still": "served"})).await;
    assert_eq!(ok_json(&inv), json!({"still": "served"}));
    assert_eq!(
        hostile.in_flight(),
        2,
        "served while the flood held its two slots, and never more than two"
    );
    let unfinished = spinners.iter().filter(|h| !h.is_finished()).count();
    assert!(
        unfinished >= 6,
        "the other plugin was served while the flood was still queued ({unfinished} left)"
    );
    for handle in spinners {
        let inv = handle.await.unwrap();
        assert!(matches!(
            inv.outcome,
            Err(secflow_runtime::InvokeError::Timeout { .. })
        ));
    }
}

#[test]
fn compile_cache_reuses_and_rejects_tampered_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let wasm = secflow_plugin_artifacts::TEST_NOOP.bytes();
    let m = || {
        manifest(
            "id = \"test-noop\"\nversion = \"0.1.0\"\nkind = \"action\"\nname = \"n\"\ndescription = \"n\"\n",
        )
    };
    let rt = runtime_with(config());
    assert_eq!(
        rt.load(m(), &wasm, Grants::none()).unwrap().cache,
        CacheOutcome::Compiled
    );
    let rt = runtime_with(config());
    assert_eq!(
        rt.load(m(), &wasm, Grants::none()).unwrap().cache,
        CacheOutcome::Hit
    );

    // Flip a byte in the compiled artifact: the HMAC no longer matches, so the host compiles
    // again instead of running native code it did not produce.
    let artifact = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let rt = runtime_with(config());
    let p = rt.load(m(), &wasm, Grants::none()).unwrap();
    assert_eq!(
        p.cache,
        CacheOutcome::Compiled,
        "tampered artifact discarded"
    );
    let rt2 = runtime_with(config());
    assert_eq!(
        rt2.load(m(), &wasm, Grants::none()).unwrap().cache,
        CacheOutcome::Hit,
        "and replaced"
    );
    // The key is not in the cache directory: what is there cannot authenticate anything.
    assert!(!dir.path().join("cache.key").exists());
    let other_key = runtime_with(RuntimeConfig {
        cache_key: Some(secflow_runtime::CacheKey([1; 32])),
        ..config()
    });
    assert_eq!(
        other_key.load(m(), &wasm, Grants::none()).unwrap().cache,
        CacheOutcome::Compiled,
        "an entry made under another key is refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_cache_entry_swapped_into_another_plugins_place_is_refused() {
    // Both components compiled into a fresh cache, then the noop's (valid, MAC-checked)
    // artifact renamed over the data processor's entry: loading the data processor must
    // not run the noop's code.
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let action = |id: &str| {
        manifest(&format!(
            "id = \"{id}\"\nversion = \"0.1.0\"\nkind = \"action\"\nname = \"n\"\ndescription = \"n\"\n"
        ))
    };
    let noop = secflow_plugin_artifacts::TEST_NOOP.bytes();
    let dp = secflow_plugin_artifacts::DATA_PROCESSOR.bytes();
    let rt = runtime_with(config());
    rt.load(action("test-noop"), &noop, Grants::none()).unwrap();
    rt.load(action("data-processor"), &dp, Grants::none())
        .unwrap();
    let entry = |wasm: &[u8], ext: &str| {
        let digest = secflow_runtime::cache::digest(wasm);
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(&digest) && name.ends_with(ext)
            })
            .unwrap()
    };
    for ext in [".cwasm", ".mac"] {
        std::fs::copy(entry(&noop, ext), entry(&dp, ext)).unwrap();
    }
    let rt = runtime_with(config());
    let loaded = rt
        .load(action("data-processor"), &dp, Grants::none())
        .unwrap();
    assert_eq!(
        loaded.cache,
        CacheOutcome::Compiled,
        "the swapped entry is refused"
    );
    // And what runs is the data processor: it lists its own actions, the noop has `echo`.
    let inv = rt
        .invoke(
            &loaded,
            secflow_runtime::Call::Actions,
            &serde_json::json!({}),
        )
        .await;
    let names: Vec<String> = match &inv.outcome {
        Ok(secflow_runtime::Output::Actions(a)) => a.iter().map(|x| x.name.clone()).collect(),
        other => panic!("{other:?}"),
    };
    assert!(names.contains(&"aggregate".to_string()), "{names:?}");
    assert!(!names.contains(&"echo".to_string()), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_stack_holds_json_nested_as_deep_as_serde_json_allows() {
    // The SDK's 128 KiB guest stack must not fail legitimate input: JSON nested 127 deep
    // (serde_json's limit) is parsed into a `Value` and serialized back inside the plugin.
    let rt = runtime();
    let dir = std::path::PathBuf::from(secflow_plugin_artifacts::TEST_NOOP.dir);
    let m = manifest(&std::fs::read_to_string(dir.join("plugin.toml")).unwrap());
    let grants = Grants::all_declared(&m, &[]).unwrap();
    let p = rt
        .load(m, &secflow_plugin_artifacts::TEST_NOOP.bytes(), grants)
        .unwrap();
    let mut nested = serde_json::json!(1);
    for _ in 0..126 {
        nested = serde_json::json!([nested]);
    }
    let params = serde_json::json!({ "deep": nested });
    let inv = exec(&rt, &p, "echo", params.clone()).await;
    assert_eq!(ok_json(&inv), params);
}
