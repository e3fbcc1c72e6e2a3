//! Load on `secflow serve`: N connections for S seconds against `POST /v1/plugins/test-noop/run`
//! (a signed, installed no-op plugin: the whole path of a run request, token and policy
//! checks, clearance, the sandboxed call, statistics and audit), and, in the same process
//! and run, the same load against a bare axum hello route as the baseline. Prints a table:
//! requests/s, p50/p99 latency, errors, and the process's RSS at start, end and peak, then
//! the RSS over the run (sampled every second) to show whether it stays flat.
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
            from_marketplace: false,
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
    /// RSS (KiB) sampled every second of the run.
    rss_series: Vec<u64>,
}

/// Latencies in microseconds, 1 µs to 60 s, three significant digits.
fn latency_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
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
            let mut series = Vec::new();
            let mut tick = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let rss = rss_kib();
                peak.fetch_max(rss, Ordering::Relaxed);
                if tick.is_multiple_of(4) {
                    series.push(rss);
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            series
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
            // A fixed-size histogram, not a growing list: the bench's own memory must not
            // show as the server's RSS growing over the run.
            let mut latencies = latency_histogram();
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
                latencies.saturating_record(t.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = latency_histogram();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_series = sampler.await.unwrap();
    let pick = |q: f64| all.value_at_quantile(q);
    Outcome {
        requests: all.len(),
        errors: errors.load(Ordering::Relaxed),
        seconds,
        p50_us: pick(0.50),
        p99_us: pick(0.99),
        rss_start,
        rss_end: rss_kib(),
        rss_peak: peak.load(Ordering::Relaxed),
        rss_series,
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
        // Flat means: what the first half of the run grew to, the second half kept.
        let series = &secflow.rss_series;
        let half = series.len() / 2;
        let mib = |k: u64| k as f64 / 1024.0;
        let first_half_peak = series[..half].iter().copied().max().unwrap_or(0);
        let second_half_peak = series[half..].iter().copied().max().unwrap_or(0);
        println!(
            "\nsecflow RSS every 5 s (MiB): {}",
            series
                .iter()
                .step_by(5)
                .map(|k| format!("{:.0}", mib(*k)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "secflow RSS peak, first half {:.1} MiB, second half {:.1} MiB: {:+.1} MiB",
            mib(first_half_peak),
            mib(second_half_peak),
            mib(second_half_peak) - mib(first_half_peak)
        );
        println!(
            "\nratio secflow / bare: {:.3}",
            (secflow.requests as f64 / secflow.seconds) / (baseline.requests as f64 / baseline.seconds)
        );
    });
}
