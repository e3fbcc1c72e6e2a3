//! What one filter call costs the proxy, step by step (criterion): the sandboxed call of the
//! official `header-policy` on a request with a 4 KiB body, alone (fresh instance, the
//! runtime only), and the way the proxy makes it (clearance of the plugin, the checks of
//! the filter's settings, the call, the after-run path with its audit event queued).
//!
//! `cargo bench -p secflow-proxy --bench filter_call -- --warm-up-time 1 --measurement-time 4`

use criterion::{Criterion, criterion_group, criterion_main};
use secflow_host::{FailureMode, Host, HostConfig, StateDir};
use secflow_runtime::bindings as b;
use secflow_runtime::{Call, Tighter};
use std::time::{Duration, Instant};

fn request() -> b::HttpRequest {
    b::HttpRequest {
        method: "POST".into(),
        uri: "/one/echo".into(),
        headers: vec![
            ("host".into(), "127.0.0.1:8080".into()),
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), "4096".into()),
        ],
        body: vec![b'x'; 4096],
    }
}

fn filter_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let host = Host::open(HostConfig {
        state_dir: StateDir::resolve(Some(home.path())),
        actor: "bench".into(),
    });
    let config = serde_json::json!({
        "required-headers": ["content-type"], "methods": ["POST"], "paths": ["/*"]
    });
    let cleared = rt.block_on(host.clear("header-policy")).unwrap();
    let plugin = rt.block_on(host.load(&cleared, &[])).unwrap();
    let runtime = host.runtime().unwrap();

    let mut group = c.benchmark_group("filter_call_header_policy");
    group.bench_function("runtime_only", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let inv = runtime
                        .invoke_within(
                            &plugin,
                            Call::OnRequest(request()),
                            &config,
                            Tighter::default(),
                        )
                        .await;
                    assert!(inv.outcome.is_ok());
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("as_the_proxy_calls_it", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let cleared = host.clear("header-policy").await.unwrap();
                    secflow_host::check_filter(&cleared, FailureMode::Closed, false).unwrap();
                    secflow_host::check_tighter(&cleared, &Tighter::default()).unwrap();
                    let (inv, _) = host
                        .invoke_live(
                            &cleared,
                            Call::OnRequest(request()),
                            &config,
                            Tighter::default(),
                        )
                        .await
                        .unwrap();
                    assert!(inv.outcome.is_ok());
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(host.flush()).unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = filter_call
}
criterion_main!(benches);
