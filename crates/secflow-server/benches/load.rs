//! Load on `secflow serve`: N connections for S seconds against `POST /v1/plugins/test-noop/run`
//! (a signed, installed no-op plugin: the whole path of a run request, token and policy
//! checks, clearance, the sandboxed call, statistics and audit), and, in the same process
//! and run, the same load against a bare axum hello route as the baseline. Prints a table:
//! requests/s, p50/p99 latency, errors, and the process's RSS at start, end and peak.
//!
//! `cargo bench -p secflow-server --bench load` (64 connections, 30 s each; set
//! `SECFLOW_LOAD_SECONDS` and `SECFLOW_LOAD_CONNECTIONS` to change them).

use secflow_host::{Answer, ApprovalRequest, Approver, Host, HostConfig, StateDir};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Yes;

impl Approver for Yes {
    fn standing(&self) -> Option<String> {
        Some("bench".into())
    }
    fn ask(&self, _request: &ApprovalRequest<'_>) -> Answer {
        Answer::CannotAsk
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Installs the no-op plugin, signed by a key the host trusts.
async fn install_noop(host: &Host, dir: &Path) {
    let a = secflow_plugin_artifacts::TEST_NOOP;
    let plugin = dir.join("noop");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(
        Path::new(a.dir).join("plugin.toml"),
        plugin.join("plugin.toml"),
    )
    .unwrap();
    std::fs::copy(a.component, plugin.join("plugin.wasm")).unwrap();
    let package = dir.join("noop.sfpkg");
    std::fs::write(&package, secflow_package::pack_dir(&plugin).unwrap()).unwrap();
    host.generate_key("bench").unwrap();
    host.change_trust(secflow_host::TrustChange::Add {
        key: "bench".into(),
        role: secflow_host::types::Role::Publisher,
        scopes: vec!["*".into()],
    })
    .await
    .unwrap();
    host.sign_package(&package, "bench", None).unwrap();
    let request = secflow_host::InstallRequest {
        packages: vec![secflow_host::Package {
            source: "bench".into(),
            bytes: std::fs::read(&package).unwrap(),
        }],
        mode: secflow_host::InstallMode::Install,
        select: Vec::new(),
        mounts: Vec::new(),
        dev: false,
        allow_rollback: false,
    };
    host.install(request, &Yes).await.unwrap();
}

struct Outcome {
    requests: u64,
    errors: u64,
    seconds: f64,
    p50_us: u64,
    p99_us: u64,
    rss_start: u64,
    rss_end: u64,
    rss_peak: u64,
}

/// `connections` clients, each on its own connection, for `seconds`.
async fn load(
    url: String,
    body: Option<(&'static str, String)>,
    token: Option<String>,
    connections: usize,
    seconds: u64,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(rss_kib()));
    let rss_start = rss_kib();
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (url, body, token, stop, errors) = (
            url.clone(),
            body.clone(),
            token.clone(),
            stop.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut latencies = Vec::with_capacity(1 << 16);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let mut request = match &body {
                    Some((content_type, text)) => client
                        .post(&url)
                        .header("content-type", *content_type)
                        .body(text.clone()),
                    None => client.get(&url),
                };
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(t.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    sampler.await.unwrap();
    all.sort_unstable();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Outcome {
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        p50_us: pick(0.50),
        p99_us: pick(0.99),
        rss_start,
        rss_end: rss_kib(),
        rss_peak: peak.load(Ordering::Relaxed),
    }
}

fn main() {
    let seconds: u64 = std::env::var("SECFLOW_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let connections: usize = std::env::var("SECFLOW_LOAD_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let home = tempfile::tempdir().unwrap();
        let host = Host::open(HostConfig {
            state_dir: StateDir::resolve(Some(home.path())),
            actor: "bench".into(),
        });
        install_noop(&host, home.path()).await;
        let token = host.create_token("bench", "operator", None).await.unwrap().token;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = secflow_server::ServerConfig {
            rate_limit: 0,
            ..Default::default()
        };
        let state = secflow_server::AppState::open(host.acting_as("api:server"), config).await.unwrap();
        tokio::spawn(secflow_server::serve(state, listener, std::future::pending(), Duration::from_secs(1)));

        let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bare_url = format!("http://{}/hello", bare.local_addr().unwrap());
        let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
        tokio::spawn(async move { axum::serve(bare, app).await });

        let run_url = format!("{base}/v1/plugins/test-noop/run");
        let body = r#"{"action":"echo","input":{"n":1}}"#.to_string();
        // Warm-up: the component compiled and cached, connections open.
        let _ = load(run_url.clone(), Some(("application/json", body.clone())), Some(token.clone()), 2, 2).await;
        let secflow = load(run_url, Some(("application/json", body)), Some(token), connections, seconds).await;
        let baseline = load(bare_url, None, None, connections, seconds).await;

        println!("\n{connections} connections, {seconds} s each, one process (client and server share the 2 cores)\n");
        println!("| route | requests/s | p50 | p99 | errors | RSS start / end / peak |");
        println!("|---|---|---|---|---|---|");
        for (name, o) in [("POST /v1/plugins/test-noop/run (secflow serve)", &secflow), ("GET /hello (bare axum)", &baseline)] {
            println!(
                "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} | {} / {} / {} MiB |",
                o.requests as f64 / o.seconds,
                o.p50_us as f64 / 1000.0,
                o.p99_us as f64 / 1000.0,
                o.errors,
                o.rss_start / 1024,
                o.rss_end / 1024,
                o.rss_peak / 1024
            );
        }
        println!(
            "\nratio secflow / bare: {:.3}",
            (secflow.requests as f64 / secflow.seconds) / (baseline.requests as f64 / baseline.seconds)
        );
    });
}
