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
use secflow_loadgen::{Load, env_or};
use std::path::Path;
use std::time::Duration;

struct Yes;

impl Approver for Yes {
    fn standing(&self) -> Option<String> {
        Some("bench".into())
    }
    fn ask(&self, _request: &ApprovalRequest<'_>) -> Answer {
        Answer::CannotAsk
    }
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

fn main() {
    let seconds = env_or("SECFLOW_LOAD_SECONDS", 30);
    let connections = env_or("SECFLOW_LOAD_CONNECTIONS", 64) as usize;
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
        let run = Load {
            url: run_url,
            body: Some(("application/json", body)),
            headers: vec![("authorization", format!("Bearer {token}"))],
            connections: 2,
            seconds: 2,
        };
        let _ = secflow_loadgen::run(run.clone()).await;
        let secflow = secflow_loadgen::run(Load { connections, seconds, ..run }).await;
        let baseline = secflow_loadgen::run(Load {
            url: bare_url,
            body: None,
            headers: Vec::new(),
            connections,
            seconds,
        })
        .await;

        println!(
            "\n{connections} connections, {seconds} s each, one process (client and server share the 2 cores), {}\n",
            secflow_loadgen::cpu_model()
        );
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
