//! Load on `secflow proxy`, one run, the ways the proxy issue asks for, against one
//! upstream on 127.0.0.1 that echoes a 4 KiB JSON body: the client → the upstream
//! directly; through the proxy with no filters; with one and with two header-only filters
//! (the official `header-policy`, request phase); with the official `pii-redactor` on both
//! bodies (a clean body, and one with an email in it, so every exchange is modified and
//! audited). Each way under load (N connections, S seconds: requests/s, p50/p99, RSS) and
//! alone (one connection: the latency a filter adds).
//!
//! `cargo bench -p secflow-proxy --bench load` (64 connections, 30 s each; set
//! `SECFLOW_LOAD_SECONDS`, `SECFLOW_LOAD_CONNECTIONS`, and `SECFLOW_LOAD_SOLO_SECONDS` for
//! the one-connection runs, default 5; `SECFLOW_LOAD_ONLY=TEXT` runs only the ways whose
//! name holds TEXT, and the direct way, e.g. to profile one).
//!
//! `SECFLOW_LOAD_PIN=1` runs the proxy on its own core, as it is deployed: the client and
//! the upstream on CPU 0 (so the direct way has that one core), the proxy's runtime and
//! every thread it starts (wasm, SQLite, audit) on CPU 1. Without it everything shares
//! both cores, and the proxy competes with the load it measures.

use secflow_host::{Host, HostConfig, StateDir};
use secflow_loadgen::{Load, Outcome, env_or};
use secflow_proxy::{Proxy, config::ProxyConfig};

/// A 4 KiB chat-style JSON body; with `email`, one message holds an address.
fn body(email: bool) -> String {
    let mut messages = Vec::new();
    let mut i = 0;
    loop {
        let text = if email && i == 3 {
            "please write to jane.doe@example.com about the invoice".to_string()
        } else {
            format!("message {i}: the quarterly figures look steady and the rollout continues")
        };
        messages.push(serde_json::json!({"role": "user", "content": text}));
        let doc = serde_json::json!({"model": "m", "messages": messages}).to_string();
        if doc.len() >= 4000 {
            let pad = 4096usize.saturating_sub(doc.len() + 12);
            return serde_json::json!({"model": "m", "pad": "x".repeat(pad), "messages": messages})
                .to_string();
        }
        i += 1;
    }
}

/// The proxy's configuration: one route per way, all to the same upstream.
fn config(upstream: &str) -> String {
    let policy = r#"
[[route.filter]]
plugin = "header-policy"
phases = ["request"]
config = { required-headers = ["content-type"], methods = ["POST"], paths = ["/*"] }
"#;
    let second = r#"
[[route.filter]]
plugin = "header-policy"
phases = ["request"]
config = { forbidden-headers = ["x-debug", "x-internal"] }
"#;
    format!(
        r#"
[[route]]
name = "plain"
path-prefix = "/plain/"
upstream = "{upstream}"

[[route]]
name = "one-header-filter"
path-prefix = "/one/"
upstream = "{upstream}"
{policy}
[[route]]
name = "two-header-filters"
path-prefix = "/two/"
upstream = "{upstream}"
{policy}{second}
[[route]]
name = "pii-redactor"
path-prefix = "/pii/"
upstream = "{upstream}"

[[route.filter]]
plugin = "pii-redactor"
"#
    )
}

/// Pins the calling thread (and the threads it starts later) to one CPU.
fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .unwrap_or_else(|e| panic!("cannot pin a thread to CPU {cpu}: {e}"));
}

fn main() {
    let seconds = env_or("SECFLOW_LOAD_SECONDS", 30);
    let solo_seconds = env_or("SECFLOW_LOAD_SOLO_SECONDS", 5);
    let connections = env_or("SECFLOW_LOAD_CONNECTIONS", 64) as usize;
    let pinned = std::env::var("SECFLOW_LOAD_PIN").is_ok_and(|v| v == "1");
    // Counted before pinning, which narrows what this thread may use.
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if pinned {
        // Threads inherit the mask: the client's runtime, the upstream and their helpers.
        pin_to(0);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The proxy's own runtime: on CPU 1 with one worker when pinned, else the shared one.
    let proxy_runtime = pinned.then(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(|| pin_to(1))
            .enable_all()
            .build()
            .unwrap()
    });
    let proxy_handle = proxy_runtime
        .as_ref()
        .map_or_else(|| runtime.handle().clone(), |r| r.handle().clone());
    runtime.block_on(async move {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_base = format!("http://{}", upstream.local_addr().unwrap());
        let app = axum::Router::new().fallback(axum::routing::any(
            |body: axum::body::Bytes| async move {
                ([("content-type", "application/json")], body)
            },
        ));
        tokio::spawn(async move { axum::serve(upstream, app).await });

        let home = tempfile::tempdir().unwrap();
        let host = Host::open(HostConfig {
            state_dir: StateDir::resolve(Some(home.path())),
            actor: "bench".into(),
        });
        let config = ProxyConfig::parse(&config(&upstream_base)).unwrap();
        // Built, bound and served on the proxy's runtime, so that the threads it starts
        // (the epoch ticker, SQLite's workers, the audit writer) start there too.
        let (proxy, listener) = proxy_handle
            .spawn(async move {
                let proxy = Proxy::new(host, config).await.unwrap();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                (proxy, listener)
            })
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        proxy_handle.spawn(proxy.serve(
            listener,
            std::future::pending(),
            std::time::Duration::from_secs(1),
        ));

        let clean = body(false);
        let with_email = body(true);
        let ways: Vec<(&str, String, &String)> = vec![
            ("direct to the upstream", format!("{upstream_base}/echo"), &clean),
            ("proxy, no filters", format!("{base}/plain/echo"), &clean),
            ("proxy, 1 header-only filter", format!("{base}/one/echo"), &clean),
            ("proxy, 2 header-only filters", format!("{base}/two/echo"), &clean),
            ("proxy, pii-redactor (clean body)", format!("{base}/pii/echo"), &clean),
            ("proxy, pii-redactor (an email: modified)", format!("{base}/pii/echo"), &with_email),
        ];
        let only = std::env::var("SECFLOW_LOAD_ONLY").unwrap_or_default();
        let ways: Vec<_> = ways
            .into_iter()
            .enumerate()
            .filter(|(i, (name, _, _))| *i == 0 || name.contains(only.as_str()))
            .map(|(_, way)| way)
            .collect();
        let load = |url: &str, body: &str, connections, seconds| Load {
            url: url.to_string(),
            body: Some(("application/json", body.to_string())),
            headers: Vec::new(),
            connections,
            seconds,
        };
        // Warm-up: every component compiled and cached, connections open.
        for (_, url, body) in &ways {
            let _ = secflow_loadgen::run(load(url, body, 2, 1)).await;
        }
        let mut loaded: Vec<Outcome> = Vec::new();
        let mut solo: Vec<Outcome> = Vec::new();
        for (name, url, body) in &ways {
            eprintln!("{name}…");
            loaded.push(secflow_loadgen::run(load(url, body, connections, seconds)).await);
            solo.push(secflow_loadgen::run(load(url, body, 1, solo_seconds)).await);
        }

        println!(
            "\n{} ({} cores); client, proxy and upstream in one process; {}",
            secflow_loadgen::cpu_model(),
            cores,
            if pinned {
                "pinned: client and upstream on CPU 0, the proxy on CPU 1"
            } else {
                "all sharing every core"
            }
        );
        println!("\n{connections} connections, {seconds} s each, 4 KiB JSON body each way\n");
        println!("| way | requests/s | × direct | p50 | p99 | errors | RSS start / end / peak | RSS growth, 2nd half |");
        println!("|---|---|---|---|---|---|---|---|");
        let direct = loaded[0].rps();
        for ((name, _, _), o) in ways.iter().zip(&loaded) {
            println!(
                "| {name} | {:.0} | {:.2} | {:.2} ms | {:.2} ms | {} | {} / {} / {} MiB | {:+.1} MiB |",
                o.rps(),
                o.rps() / direct,
                o.p50_us as f64 / 1000.0,
                o.p99_us as f64 / 1000.0,
                o.errors,
                o.rss_start / 1024,
                o.rss_end / 1024,
                o.rss_peak / 1024,
                o.rss_growth_mib(),
            );
        }
        println!("\n1 connection, {solo_seconds} s each: the latency each way adds\n");
        println!("| way | p50 | p99 | added p50 | added p99 | errors |");
        println!("|---|---|---|---|---|---|");
        for (i, ((name, _, _), o)) in ways.iter().zip(&solo).enumerate() {
            // Filters are measured against the proxy without filters; the proxy against
            // the direct path.
            let base = if i <= 1 || solo.len() < 2 { &solo[0] } else { &solo[1] };
            println!(
                "| {name} | {} µs | {} µs | {:+} µs | {:+} µs | {} |",
                o.p50_us,
                o.p99_us,
                o.p50_us as i64 - base.p50_us as i64,
                o.p99_us as i64 - base.p99_us as i64,
                o.errors
            );
        }
    });
}
