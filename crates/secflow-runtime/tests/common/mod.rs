//! Shared helpers for the runtime tests: real components built from `plugins/`, real
//! manifests, and a real HTTP server on loopback.

#![allow(dead_code)]

use secflow_manifest::{Format, Manifest};
use secflow_plugin_artifacts as artifacts;
use secflow_runtime::{Call, Grants, Invocation, InvokeError, Plugin, Runtime, RuntimeConfig};
use std::path::PathBuf;

/// The compile cache key of the tests (a real host derives its key from the host key).
pub const TEST_CACHE_KEY: secflow_runtime::CacheKey = secflow_runtime::CacheKey([42; 32]);

pub fn runtime() -> Runtime {
    runtime_with(RuntimeConfig::default())
}

pub fn runtime_with(mut config: RuntimeConfig) -> Runtime {
    if config.cache_dir.is_none() {
        // Shared across tests so each component is compiled once per test run.
        config.cache_dir = Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"));
    }
    config.cache_key.get_or_insert(TEST_CACHE_KEY);
    Runtime::new(config).expect("runtime starts")
}

pub fn manifest(text: &str) -> Manifest {
    Manifest::parse(text.as_bytes(), Format::Toml, "test plugin.toml").expect("valid test manifest")
}

/// The hostile plugin's manifest header; tests add capabilities and limits.
pub fn hostile_manifest(extra: &str) -> Manifest {
    manifest(&format!(
        "id = \"test-hostile\"\nversion = \"0.1.0\"\nkind = \"action\"\nname = \"Hostile\"\n\
         description = \"Attacks the sandbox.\"\n{extra}"
    ))
}

/// Capabilities the hostile component needs to load at all (it imports wasi:http and kv).
pub const HOSTILE_BASE_CAPS: &str = r#"
[[capabilities.network]]
host = "allowed.example.com"
reason = "the granted host used by the network attack tests"
[capabilities.kv]
reason = "checks that the store is private to the plugin"
[limits]
memory-mib = 32
timeout-ms = 1000
output-kib = 256
log-kib = 16
"#;

pub fn load_hostile(rt: &Runtime, extra: &str) -> Plugin {
    let m = hostile_manifest(extra);
    let grants = Grants::all_declared(&m, &[]).expect("no mounts");
    rt.load(m, &artifacts::TEST_HOSTILE.bytes(), grants)
        .expect("hostile plugin loads")
}

pub fn load_hostile_with(rt: &Runtime, extra: &str, mounts: &[(String, PathBuf)]) -> Plugin {
    let m = hostile_manifest(extra);
    let grants = Grants::all_declared(&m, mounts).expect("mounts are declared");
    rt.load(m, &artifacts::TEST_HOSTILE.bytes(), grants)
        .expect("hostile plugin loads")
}

pub async fn exec(
    rt: &Runtime,
    plugin: &Plugin,
    action: &str,
    params: serde_json::Value,
) -> Invocation {
    rt.invoke(
        plugin,
        Call::Execute {
            action: action.to_string(),
            params: params.to_string(),
        },
        &serde_json::json!({}),
    )
    .await
}

pub fn ok_json(inv: &Invocation) -> serde_json::Value {
    match &inv.outcome {
        Ok(secflow_runtime::Output::Json(v)) => v.clone(),
        other => panic!("expected a JSON output, got {other:?}"),
    }
}

pub fn err(inv: &Invocation) -> &InvokeError {
    inv.outcome
        .as_ref()
        .expect_err("expected the invocation to fail")
}

/// Asserts the plugin still works after an attack: the host is unharmed.
pub async fn assert_next_invocation_works(rt: &Runtime, plugin: &Plugin) {
    let inv = exec(rt, plugin, "noop", serde_json::json!({})).await;
    assert_eq!(
        ok_json(&inv),
        serde_json::json!("ok"),
        "the next invocation must work"
    );
}

/// A minimal HTTP/1.1 server on 127.0.0.1 for network tests. Routes:
/// `/ok` 200 "hello", `/redirect-evil` 302 to a host that is not granted,
/// `/redirect-ok` 302 to `/ok` on the same server, `/big` a 4 MiB body, `/hang` no answer.
#[derive(Debug)]
pub struct TestServer {
    pub port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Connections the server accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

pub async fn start_server() -> TestServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let handle = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body): (&str, String, Vec<u8>) = match path.as_str() {
                    "/ok" => ("200 OK", String::new(), b"hello".to_vec()),
                    "/redirect-evil" => (
                        "302 Found",
                        "Location: http://evil.example.net/steal\r\n".into(),
                        vec![],
                    ),
                    "/redirect-ok" => ("302 Found", "Location: /ok\r\n".into(), vec![]),
                    "/big" => ("200 OK", String::new(), vec![b'x'; 4 << 20]),
                    // Never answers: only the host's own deadline ends a call waiting here.
                    "/hang" => {
                        std::future::pending::<()>().await;
                        unreachable!()
                    }
                    _ => ("404 Not Found", String::new(), b"no".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    TestServer {
        port,
        accepted,
        handle,
    }
}
