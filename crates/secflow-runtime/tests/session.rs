//! Detector sessions: one instance for several batches of one scan, with a deadline per call,
//! poisoned by the first failure.

use secflow_runtime::bindings::FileInput;
use secflow_runtime::{Grants, InvokeError, Output, Runtime, RuntimeConfig};
use std::path::Path;
use std::sync::Arc;

fn batch(files: &[(&str, &str)]) -> Arc<Vec<FileInput>> {
    Arc::new(
        files
            .iter()
            .map(|(path, text)| FileInput {
                path: path.to_string(),
                content: text.as_bytes().to_vec(),
            })
            .collect(),
    )
}

fn findings(out: &Output) -> usize {
    match out {
        Output::BatchFindings(results) => results.iter().map(|r| r.as_ref().unwrap().len()).sum(),
        other => panic!("unexpected output {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_serves_many_batches_each_with_its_own_deadline_until_one_fails() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let a = secflow_plugin_artifacts::TEST_DETECTOR;
    let manifest =
        secflow_manifest::Manifest::from_file(&Path::new(a.dir).join("plugin.toml")).unwrap();
    let plugin = Arc::new(rt.load(manifest, &a.bytes(), Grants::none()).unwrap());
    let config = serde_json::json!({});

    let mut session = rt.detect_session(plugin.clone(), &config).await.unwrap();
    // Several calls spread over more than the plugin's 2 s timeout: each call's deadline
    // starts with the call, not with the session.
    for round in 0..3 {
        if round == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        }
        let inv = session
            .detect(batch(&[
                ("a.txt", "TEST-FINDING\n"),
                ("b.txt", "x\nTEST-FINDING\n"),
            ]))
            .await;
        assert_eq!(findings(inv.outcome.as_ref().unwrap()), 2);
        assert!(session.usable());
    }
    let inv = session.detect(batch(&[("loop.txt", "LOOP-NOW")])).await;
    assert!(
        matches!(inv.outcome, Err(InvokeError::Timeout { .. })),
        "{:?}",
        inv.outcome
    );
    assert!(!session.usable(), "a failed call poisons the session");
    let inv = session.detect(batch(&[("a.txt", "TEST-FINDING\n")])).await;
    match &inv.outcome {
        Err(InvokeError::Host { message }) => {
            assert_eq!(message, "this session failed earlier; open a new one")
        }
        other => panic!("a poisoned session refuses to run: {other:?}"),
    }
    assert_eq!(inv.report.wall_time_us, 0, "nothing ran");

    // A new session starts clean.
    let mut fresh = rt.detect_session(plugin.clone(), &config).await.unwrap();
    let inv = fresh.detect(batch(&[("a.txt", "TEST-FINDING\n")])).await;
    assert_eq!(findings(inv.outcome.as_ref().unwrap()), 1);

    // A bad configuration fails at open, with the reason.
    let err = rt
        .detect_session(plugin, &serde_json::json!("not an object"))
        .await
        .unwrap_err();
    match &err.outcome {
        Err(InvokeError::InvalidConfig { errors }) => {
            assert!(errors.iter().any(|e| e.contains("object")), "{errors:?}")
        }
        other => panic!("{other:?}"),
    }
}
