//! Running the proxy: per-filter deadlines and fuel tighter than the manifest's, TLS
//! termination, the admin endpoints and their per-filter counts, a reload that swaps the
//! filters under a live connection (and one that is refused), and the attacks on the
//! front door: request smuggling, oversized headers, slow clients.

mod common;

use common::*;
use secflow_proxy::{Proxy, config::ProxyConfig};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes and reads what comes back until the proxy closes the connection (or
/// 10 s pass: then what arrived so far).
async fn raw(base: &str, bytes: &[u8]) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filters_deadline_and_fuel_are_tighter_than_its_manifest() {
    let up = upstream().await;
    // The manifest allows 500 ms; the route's filter 40.
    let tight = "[[route.filter]]\nplugin = \"test-filter\"\ntimeout-ms = 40\n";
    let proxy = start(tight, "", &up).await;
    let (status, _, body) = send(&proxy.base, "/x", Some("loop")).await;
    assert_eq!(status, 503, "{body}");
    let recorded = decisions(&proxy.host).await;
    assert_eq!(recorded[0].0, "timeout", "{recorded:?}");
    assert!(recorded[0].1.contains("its 40 ms deadline"), "{recorded:?}");

    // Fuel needs a manifest that meters it; said so at start, not ignored.
    let fueled = "[[route.filter]]\nplugin = \"test-filter\"\nfuel = 2000000\n";
    let home = tempfile::tempdir().unwrap();
    let host = secflow_host::Host::open(secflow_host::HostConfig {
        state_dir: secflow_host::StateDir::resolve(Some(&home.path().join("home"))),
        actor: "test".into(),
    });
    install_filter(&host, home.path(), "").await;
    let refused = Proxy::new(
        host,
        ProxyConfig::parse(&route_config("", fueled, &up)).unwrap(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("its manifest does not meter fuel"),
        "{refused}"
    );

    // Metered by its manifest (a budget a loop spends only after its 500 ms deadline),
    // the filter's own budget stops the loop first: out of fuel, not a timeout.
    let proxy = start_with("", fueled, "", "fuel = 100000000000\n", &up).await;
    let (status, _, body) = send(&proxy.base, "/x", Some("loop")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("(error)"), "{body}");
    let recorded = decisions(&proxy.host).await;
    assert!(
        recorded[0].1.contains("out of fuel") && recorded[0].1.contains("2000000 fuel units"),
        "{recorded:?}"
    );
    // A plain request fits in the budget.
    let (status, _, body) = send(&proxy.base, "/y", None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_terminated_and_the_upstream_is_told_https() {
    let up = upstream().await;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let head = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let proxy = start_with(&head, CLOSED, "", "", &up).await;
    let addr: std::net::SocketAddr = proxy.base.trim_start_matches("http://").parse().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/t", addr.port());
    let body = client
        .post(&url)
        .body("hello")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("proto=https") && body.ends_with("body=hello"),
        "{body}"
    );
    let blocked = client
        .post(&url)
        .header("x-test-filter", "block")
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 403);
    // Plain HTTP on the TLS port gets no HTTP answer.
    let answer = raw(&proxy.base, b"GET /t HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(!answer.contains("HTTP/1.1 200"), "{answer}");

    // A key that is not there is named at start.
    let missing = format!(
        "[tls]\ncert = {:?}\nkey = \"/nonexistent/key.pem\"\n",
        cert.display().to_string()
    );
    let error = Proxy::new(
        proxy.host.clone(),
        ProxyConfig::parse(&route_config(&missing, "", &up)).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("/nonexistent/key.pem"),
        "{error:#}"
    );
}

const CLOSED: &str = "[[route.filter]]\nplugin = \"test-filter\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_bind_counts_each_filters_outcomes_and_is_not_a_route() {
    let up = upstream().await;
    let proxy = start(CLOSED, "", &up).await;
    for behaviour in [None, None, Some("block"), Some("modify"), Some("trap")] {
        send(&proxy.base, "/m", behaviour).await;
    }
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_base = format!("http://{}", admin.local_addr().unwrap());
    tokio::spawn(
        proxy
            .proxy
            .clone()
            .serve_admin(admin, std::future::pending()),
    );

    let metrics = reqwest::get(format!("{admin_base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"secflow_proxy_filter_calls_total{route="api",filter="test-filter",phase="request",outcome="allow"} 2"#,
        r#"secflow_proxy_filter_calls_total{route="api",filter="test-filter",phase="request",outcome="block"} 1"#,
        r#"secflow_proxy_filter_calls_total{route="api",filter="test-filter",phase="request",outcome="error"} 1"#,
        r#"secflow_proxy_requests_total{route="api",status="403"} 1"#,
        r#"secflow_proxy_requests_total{route="api",status="503"} 1"#,
        "secflow_proxy_config_generation 1",
    ] {
        assert!(metrics.contains(line), "no {line} in:\n{metrics}");
    }
    let report: serde_json::Value = reqwest::get(format!("{admin_base}/admin/filters"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let filter = &report["routes"][0]["filters"][0];
    assert_eq!(filter["plugin"], "test-filter");
    let request = &filter["counts"]["request"];
    assert_eq!(request["calls"], 5, "{report}");
    assert_eq!(request["outcomes"]["modify"], 1, "{report}");
    // Responses of the three exchanges that reached the upstream.
    assert_eq!(filter["counts"]["response"]["calls"], 3, "{report}");

    // The routes do not serve the admin endpoints: /metrics goes to the upstream.
    let (_, _, body) = send(&proxy.base, "/metrics", None).await;
    assert!(body.starts_with("POST /metrics "), "{body}");
    // And the admin bind changes nothing.
    let post = reqwest::Client::new()
        .post(format!("{admin_base}/admin/filters"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_the_filters_under_a_live_connection_and_a_bad_one_changes_nothing() {
    let up = upstream().await;
    let proxy = start("", "", &up).await;
    let addr = proxy.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // One keep-alive connection; each answer is read by its length.
    async fn exchange(stream: &mut tokio::net::TcpStream, behaviour: &str) -> String {
        let request = format!(
            "GET /r HTTP/1.1\r\nHost: a\r\nx-test-filter: {behaviour}\r\ncontent-length: 0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(
                n > 0,
                "the connection was closed: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                if body.len() >= length {
                    return text;
                }
            }
        }
    }
    let first = exchange(&mut stream, "block").await;
    assert!(first.starts_with("HTTP/1.1 200"), "no filters yet: {first}");

    let text = route_config("", CLOSED, &up);
    let generation = proxy
        .proxy
        .reload(ProxyConfig::parse(&text).unwrap())
        .await
        .unwrap();
    assert_eq!(generation, 2);
    let second = exchange(&mut stream, "block").await;
    assert!(
        second.starts_with("HTTP/1.1 403"),
        "same connection, new filters: {second}"
    );

    // Refused: a filter that is not installed, and a change of what is bound at start.
    // The configuration in force stays.
    let unknown = route_config("", "[[route.filter]]\nplugin = \"no-such-filter\"\n", &up);
    let error = proxy
        .proxy
        .reload(ProxyConfig::parse(&unknown).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no-such-filter") && error.contains("stays in force"),
        "{error}"
    );
    let moved = route_config("listen = \"127.0.0.1:1\"\n", CLOSED, &up);
    let error = proxy
        .proxy
        .reload(ProxyConfig::parse(&moved).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("listen changed"), "{error}");
    let third = exchange(&mut stream, "block").await;
    assert!(third.starts_with("HTTP/1.1 403"), "{third}");

    let events = events(&proxy.host, secflow_audit::Action::ProxyConfig).await;
    let kinds: Vec<&str> = events.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        kinds,
        ["start", "reload", "reload-refused", "reload-refused"],
        "{events:?}"
    );
    assert!(events[3].1.contains("listen changed"), "{events:?}");
    assert!(
        proxy
            .proxy
            .metrics()
            .render()
            .contains("secflow_proxy_config_generation 2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_oversized_headers_and_slow_clients_are_refused() {
    let up = upstream().await;
    let head = "[limits]\nheader-timeout-ms = 300\nbody-timeout-ms = 300\n";
    let proxy = start_with(head, CLOSED, "", "", &up).await;

    // Content-Length and Transfer-Encoding together (CL.TE / TE.CL): the chunked framing
    // wins, the upstream gets the body as the proxy read it (empty) with the proxy's own
    // length, and the connection is closed after one answer (RFC 9112 §6.3), so what
    // hides after the body never becomes a request of its own.
    let answer = raw(
        &proxy.base,
        b"POST /cl-te HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled-1 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("body="),
        "{answer}"
    );
    // Two lengths that disagree.
    let answer = raw(
        &proxy.base,
        b"POST /two-lengths HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhelloGET /smuggled-2 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // A transfer coding that is not chunked at the end.
    let answer = raw(
        &proxy.base,
        b"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled-3 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let seen = SEEN.lock().unwrap().clone();
    assert!(seen.iter().any(|p| p == "/cl-te"), "{seen:?}");
    for path in [
        "/smuggled-1",
        "/smuggled-2",
        "/smuggled-3",
        "/two-lengths",
        "/te",
    ] {
        assert!(
            !seen.iter().any(|p| p == path),
            "{path} reached the upstream: {seen:?}"
        );
    }

    // Too many or too large headers: 431, nothing forwarded.
    let mut many = String::from("GET /many HTTP/1.1\r\nHost: a\r\n");
    for i in 0..200 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(&proxy.base, many.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    let large = format!(
        "GET /large HTTP/1.1\r\nHost: a\r\nx-big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = raw(&proxy.base, large.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );

    // A client that never finishes its head is cut off after header-timeout-ms.
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        raw(&proxy.base, b"GET /slow-head HTTP/1.1\r\nHost: a\r\n"),
    )
    .await
    .expect("the proxy closes a connection whose head never ends");
    assert!(!answer.contains("200"), "{answer}");
    // One that trickles its body gets 408 after body-timeout-ms.
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        raw(
            &proxy.base,
            b"POST /slow-body HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly this",
        ),
    )
    .await
    .expect("the proxy answers a body that never ends");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("proxy-request-timeout"), "{answer}");
    let seen = SEEN.lock().unwrap().clone();
    for path in ["/many", "/large", "/slow-head", "/slow-body"] {
        assert!(
            !seen.iter().any(|p| p == path),
            "{path} reached the upstream: {seen:?}"
        );
    }
    // And the proxy still serves.
    let (status, _, body) = send(&proxy.base, "/after", None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_without_a_network_grant_cannot_reach_loopback_or_the_metadata_address() {
    let up = upstream().await;
    let proxy = start(CLOSED, "", &up).await;
    let client = reqwest::Client::new();
    for target in [
        format!("{up}/reached-by-the-filter"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let response = client
            .post(format!("{}/f", proxy.base))
            .header("x-test-filter", "fetch")
            .header("x-fetch", &target)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{target}");
        let body = response.text().await.unwrap();
        assert!(body.contains("proxy-filter-failed"), "{body}");
    }
    assert!(
        !SEEN
            .lock()
            .unwrap()
            .iter()
            .any(|p| p == "/reached-by-the-filter" || p == "/f"),
        "the upstream was reached"
    );
    // Each refusal is in the audit log: the exchange's decision with the host's reason,
    // and the sandbox violation (which counts toward the plugin's quarantine).
    let recorded = decisions(&proxy.host).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    for (decision, reason) in &recorded {
        assert_eq!(decision, "error");
        assert!(
            reason.contains("capability denied")
                && reason.contains("is not covered by any network grant"),
            "{reason}"
        );
    }
    let violations: Vec<String> = events(&proxy.host, secflow_audit::Action::SandboxViolation)
        .await
        .into_iter()
        .map(|(_, reason)| reason)
        .collect();
    assert_eq!(
        violations.len(),
        2,
        "one sandbox violation per attempt: {violations:?}"
    );
    let (status, _, _) = send(&proxy.base, "/after", None).await;
    assert_eq!(status, 200);
}
