//! What the proxy's tests share: a fresh state directory with the `test-filter` plugin
//! installed (signed, trusted), an echo upstream on 127.0.0.1, a proxy in front of it,
//! and the audit log's filter decisions.

#![allow(dead_code)] // each test file uses its own part

use secflow_host::{
    Answer, ApprovalRequest, Approver, Host, HostConfig, InstallMode, InstallRequest, Package,
    StateDir, TrustChange,
};
use secflow_proxy::{Proxy, config::ProxyConfig};
use std::path::Path;
use std::time::Duration;

pub struct Yes;

impl Approver for Yes {
    fn standing(&self) -> Option<String> {
        Some("test".into())
    }
    fn ask(&self, _request: &ApprovalRequest<'_>) -> Answer {
        Answer::CannotAsk
    }
}

/// Installs `test-filter`, with `extra` added to its manifest's top-level keys, signed by
/// a trusted key.
pub async fn install_filter(host: &Host, dir: &Path, extra: &str) {
    install_filter_with(host, dir, extra, "").await;
}

/// [`install_filter`], with `limits` added to its manifest's `[limits]` table.
pub async fn install_filter_with(host: &Host, dir: &Path, extra: &str, limits: &str) {
    let a = secflow_plugin_artifacts::TEST_FILTER;
    let plugin = dir.join("filter");
    std::fs::create_dir_all(&plugin).unwrap();
    let manifest = std::fs::read_to_string(Path::new(a.dir).join("plugin.toml")).unwrap();
    let manifest = manifest.replacen("\n[limits]", &format!("\n{extra}[limits]\n{limits}"), 1);
    std::fs::write(plugin.join("plugin.toml"), manifest).unwrap();
    std::fs::copy(a.component, plugin.join("plugin.wasm")).unwrap();
    let package = dir.join("filter.sfpkg");
    std::fs::write(&package, secflow_package::pack_dir(&plugin).unwrap()).unwrap();
    host.generate_key("test").unwrap();
    host.change_trust(TrustChange::Add {
        key: "test".into(),
        role: secflow_host::types::Role::Publisher,
        scopes: vec!["*".into()],
    })
    .await
    .unwrap();
    host.sign_package(&package, "test", None).unwrap();
    host.install(
        InstallRequest {
            packages: vec![Package {
                source: "test".into(),
                bytes: std::fs::read(&package).unwrap(),
                from_marketplace: false,
            }],
            mode: InstallMode::Install,
            select: Vec::new(),
            mounts: Vec::new(),
            dev: false,
            allow_rollback: false,
        },
        &Yes,
    )
    .await
    .unwrap();
}

/// Every path an `upstream` was asked for, in this test process.
pub static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// An upstream that echoes what it got: method, path, the headers the filters add, and
/// the body; `/secret` answers with a canary, `/slow` waits 2 s.
pub async fn upstream() -> String {
    use axum::routing::any;
    async fn echo(request: axum::extract::Request) -> String {
        let path = request.uri().path().to_string();
        SEEN.lock().unwrap().push(path.clone());
        if path == "/slow" {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if path == "/secret" {
            return "token: CANARY-abc123 end".into();
        }
        let (parts, body) = request.into_parts();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        let line = format!(
            "{} {} filtered={} remembered={} xff={} proto={}",
            parts.method,
            parts.uri,
            header("x-filtered"),
            header("x-remembered"),
            header("x-forwarded-for"),
            header("x-forwarded-proto"),
        );
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        format!("{line} body={}", String::from_utf8_lossy(&body))
    }
    let app = axum::Router::new().fallback(any(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

pub struct Running {
    pub base: String,
    pub host: Host,
    pub proxy: Proxy,
    pub home: tempfile::TempDir,
}

pub async fn start(filters: &str, manifest_extra: &str, upstream_base: &str) -> Running {
    start_with("", filters, manifest_extra, "", upstream_base).await
}

/// A proxy with `head` (top-level keys and tables: `admin`, `[tls]`, `[limits]`) before
/// its one route `api` to `upstream_base` with `filters`; `test-filter` installed with
/// `manifest_extra` and `manifest_limits` added to its manifest.
pub async fn start_with(
    head: &str,
    filters: &str,
    manifest_extra: &str,
    manifest_limits: &str,
    upstream_base: &str,
) -> Running {
    let home = tempfile::tempdir().unwrap();
    let host = Host::open(HostConfig {
        state_dir: StateDir::resolve(Some(&home.path().join("home"))),
        actor: "test".into(),
    });
    install_filter_with(&host, home.path(), manifest_extra, manifest_limits).await;
    let config = ProxyConfig::parse(&route_config(head, filters, upstream_base)).unwrap();
    let proxy = Proxy::new(host.acting_as("proxy"), config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        proxy
            .clone()
            .serve(listener, std::future::pending(), Duration::from_secs(1)),
    );
    Running {
        base,
        host,
        proxy,
        home,
    }
}

/// The configuration text `start_with` uses.
pub fn route_config(head: &str, filters: &str, upstream_base: &str) -> String {
    format!(
        "{head}\n[[route]]\nname = \"api\"\nupstream = \"{upstream_base}\"\ntimeout-ms = 500\n{filters}\n"
    )
}

pub async fn send(base: &str, path: &str, behaviour: Option<&str>) -> (u16, String, String) {
    let client = reqwest::Client::new();
    let mut request = client.post(format!("{base}{path}")).body("hello");
    if let Some(b) = behaviour {
        request = request.header("x-test-filter", b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// The filter decisions in the audit log: (decision, reason), oldest first.
pub async fn decisions(host: &Host) -> Vec<(String, String)> {
    events(host, secflow_audit::Action::ProxyDecision).await
}

/// The audit log's events of `action`: (decision, reason), oldest first.
pub async fn events(host: &Host, action: secflow_audit::Action) -> Vec<(String, String)> {
    host.audit_entries(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == action.as_str())
        .map(|e| (e.event.decision.unwrap_or_default(), e.event.reason))
        .collect()
}
