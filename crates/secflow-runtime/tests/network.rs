//! Network attacks: every outgoing request goes through the grant check, and so does every
//! address the name resolves to. A real HTTP server on 127.0.0.1 stands in for the internet.

mod common;

use common::*;
use secflow_runtime::InvokeError;
use serde_json::json;

fn loopback_grant(port: u16) -> String {
    format!(
        "{HOSTILE_BASE_CAPS}\n[[capabilities.network]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\nreason = \"talks to the local test server\"\n"
    )
}

fn denied(inv: &secflow_runtime::Invocation) -> String {
    match &inv.outcome {
        Err(InvokeError::CapabilityDenied { capability, reason }) => {
            assert_eq!(capability, "network");
            reason.clone()
        }
        other => panic!("expected capability-denied, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn granted_loopback_ip_is_reachable() {
    let server = start_server().await;
    let rt = runtime();
    let p = load_hostile(&rt, &loopback_grant(server.port));
    let url = format!("http://127.0.0.1:{}/ok", server.port);
    let inv = exec(&rt, &p, "http-get", json!({ "url": url })).await;
    let out = ok_json(&inv);
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], "hello");
    assert_eq!(inv.report.http_requests, 1);
    assert!(inv.report.denials.is_empty());
    // A redirect to the same granted origin is followed and checked again.
    let url = format!("http://127.0.0.1:{}/redirect-ok", server.port);
    let inv = exec(&rt, &p, "http-get", json!({ "url": url })).await;
    assert_eq!(ok_json(&inv)["body"], "hello");
    assert_eq!(inv.report.http_requests, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_http_to_host_not_granted() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(
        &rt,
        &p,
        "http-get",
        json!({"url": "https://evil.example.net/"}),
    )
    .await;
    let reason = denied(&inv);
    assert!(
        reason.contains("evil.example.net") && reason.contains("not covered"),
        "{reason}"
    );
    // Suffix tricks do not match the grant either.
    let inv = exec(
        &rt,
        &p,
        "http-get",
        json!({"url": "https://allowed.example.com.evil.net/"}),
    )
    .await;
    assert_eq!(
        denied(&inv),
        "request to https://allowed.example.com.evil.net:443 is not covered by any network grant"
    );
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_http_to_granted_name_resolving_to_loopback() {
    let server = start_server().await;
    let rt = runtime();
    let caps = format!(
        "{HOSTILE_BASE_CAPS}\n[[capabilities.network]]\nscheme = \"http\"\nhost = \"localhost\"\nport = {}\nreason = \"a public-looking name that resolves inward\"\n",
        server.port
    );
    let p = load_hostile(&rt, &caps);
    let url = format!("http://localhost:{}/ok", server.port);
    let inv = exec(&rt, &p, "http-get", json!({ "url": url })).await;
    // The name is granted, so the URL check passed: the resolved-address check refused it.
    let reason = denied(&inv);
    assert!(
        reason.starts_with("localhost resolved to internal address "),
        "{reason}"
    );
    assert_eq!(inv.report.denials.len(), 1);
    assert_eq!(server.connections(), 0, "nothing reached the server");
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_http_to_cloud_metadata_address() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    // Not granted: refused by the URL check (the resolved-address check for metadata
    // addresses behind a granted name is `metadata_addresses_behind_a_granted_name_are_refused`
    // in netpolicy.rs, and end to end `attack_http_to_granted_name_resolving_to_loopback`).
    for (url, shown) in [
        (
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.169.254:80",
        ),
        ("https://169.254.169.254/", "https://169.254.169.254:443"),
    ] {
        let inv = exec(&rt, &p, "http-get", json!({ "url": url })).await;
        assert_eq!(
            denied(&inv),
            format!("request to {shown} is not covered by any network grant")
        );
        assert_eq!(inv.report.denials.len(), 1);
    }
    let inv = exec(
        &rt,
        &p,
        "http-get",
        json!({"url": "http://[::ffff:169.254.169.254]/"}),
    )
    .await;
    let reason = denied(&inv);
    assert!(
        reason.starts_with("request to ")
            && reason.ends_with(" is not covered by any network grant"),
        "{reason}"
    );
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_redirect_from_granted_host_to_non_granted_host() {
    let server = start_server().await;
    let rt = runtime();
    let p = load_hostile(&rt, &loopback_grant(server.port));
    let url = format!("http://127.0.0.1:{}/redirect-evil", server.port);
    let inv = exec(&rt, &p, "http-get", json!({ "url": url })).await;
    let reason = denied(&inv);
    assert!(reason.contains("evil.example.net"), "{reason}");
    assert_eq!(
        inv.report.http_requests, 2,
        "the first hop went out, the second was refused"
    );
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_plain_http_when_only_https_granted() {
    let rt = runtime();
    let p = load_hostile(&rt, HOSTILE_BASE_CAPS);
    let inv = exec(
        &rt,
        &p,
        "http-get",
        json!({"url": "http://allowed.example.com/"}),
    )
    .await;
    let reason = denied(&inv);
    assert!(reason.contains("only https"), "{reason}");
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_oversized_response_and_request_flood_are_capped() {
    let server = start_server().await;
    let rt = runtime();
    let caps = loopback_grant(server.port).replace(
        "log-kib = 16",
        "log-kib = 16\nhttp-requests = 1\nhttp-response-kib = 64",
    );
    let p = load_hostile(&rt, &caps);
    let url = format!("http://127.0.0.1:{}/big", server.port);
    let inv = exec(&rt, &p, "http-get", json!({ "url": url })).await;
    match err(&inv) {
        InvokeError::Plugin {
            error: secflow_runtime::bindings::PluginError::Denied(m),
        } => assert!(
            m.contains("response body size exceeds limit: 65536 bytes"),
            "{m}"
        ),
        other => panic!("expected the body cap to cut the transfer, got {other:?}"),
    }
    assert!(
        inv.report.http_response_bytes > 64 << 10,
        "the cap was actually crossed"
    );
    assert!(
        inv.report.denials.is_empty(),
        "not refused by the URL check"
    );
    assert!(
        inv.report.http_response_bytes <= (64 << 10) + (64 << 10),
        "{}",
        inv.report.http_response_bytes
    );
    // The redirect needs a second request, over the budget of one.
    let url = format!("http://127.0.0.1:{}/redirect-ok", server.port);
    let inv = exec(&rt, &p, "http-get", json!({ "url": url })).await;
    let reason = denied(&inv);
    assert!(reason.contains("more than 1 HTTP requests"), "{reason}");
    assert_next_invocation_works(&rt, &p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_blocked_in_a_host_call_is_stopped_by_the_deadline() {
    // Epochs cannot interrupt a plugin waiting inside a host call; the outer timeout must.
    let server = start_server().await;
    let rt = runtime();
    let p = load_hostile(&rt, &loopback_grant(server.port));
    let url = format!("http://127.0.0.1:{}/hang", server.port);
    let started = std::time::Instant::now();
    let inv = exec(&rt, &p, "http-get", json!({ "url": url })).await;
    assert!(
        matches!(err(&inv), InvokeError::Timeout { limit_ms: 1000 }),
        "{:?}",
        inv.outcome
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "stopped near the 1 s deadline, not the 30 s first-byte timeout"
    );
    assert_next_invocation_works(&rt, &p).await;
}
