//! The server's transport and lifecycle on a real socket: TLS termination (HTTP/1.1 and
//! HTTP/2 by ALPN, plain HTTP refused on the TLS port) and graceful shutdown (in-flight
//! requests finish, new connections are refused, the audit log is intact afterwards).

use secflow_host::{Host, HostConfig, StateDir};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Running {
    addr: std::net::SocketAddr,
    host: Host,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _home: tempfile::TempDir,
}

async fn start(config: secflow_server::ServerConfig, home: tempfile::TempDir) -> Running {
    let host = Host::open(HostConfig {
        state_dir: StateDir::resolve(Some(home.path())),
        actor: "test".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = secflow_server::AppState::open(host.acting_as("api:server"), config)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(secflow_server::serve(
        state,
        listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(10),
    ));
    Running {
        addr,
        host,
        stop,
        task,
        _home: home,
    }
}

/// A server with TLS from the PEM texts `cert` and `key` (written to `home`).
async fn start_tls(home: tempfile::TempDir, cert: &str, key: &str) -> Running {
    let (cert_path, key_path) = (home.path().join("cert.pem"), home.path().join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let config = secflow_server::ServerConfig {
        tls: Some((cert_path, key_path)),
        ..Default::default()
    };
    start(config, home).await
}

/// A TLS client that trusts `cert` alone and offers `alpn`.
fn client(cert: &rcgen::Certificate, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Sends a raw HTTP/1.1 request and reads the whole response.
async fn http1<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http1_and_h2_and_refuses_plain_http() {
    let home = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let server = start_tls(
        home,
        &certified.cert.pem(),
        &certified.signing_key.serialize_pem(),
    )
    .await;
    let connector = |alpn: &[&[u8]]| client(&certified.cert, alpn);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

    // HTTP/1.1 over TLS.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = connector(&[b"http/1.1"])
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let response = http1(
        tls,
        "GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // HTTP/2 is offered by ALPN and taken.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = connector(&[b"h2"])
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // A client that does not trust the certificate fails the handshake.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let stranger = client(&other.cert, &[]);
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    assert!(stranger.connect(name, tcp).await.is_err());

    // Plain HTTP on the TLS port gets no HTTP answer.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let response = tokio::time::timeout(
        Duration::from_secs(15),
        http1(
            tcp,
            "GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ),
    )
    .await
    .expect("the server closes a connection that is not TLS");
    assert!(!response.contains("200 OK"), "{response}");

    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_files_that_do_not_fit_are_named() {
    let server = start_tls(
        tempfile::tempdir().unwrap(),
        "not a certificate",
        "not a key",
    )
    .await;
    let error = server.task.await.unwrap().unwrap_err();
    let message = format!("{error:#}");
    // The first fault is named: the certificate file holds no certificate.
    assert!(
        message.contains("cert.pem") && message.contains("no PEM certificate"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_and_refuses_new_ones() {
    let server = start(Default::default(), tempfile::tempdir().unwrap()).await;
    let token = server
        .host
        .create_token("drain", "admin", None)
        .await
        .unwrap()
        .token;

    // In flight when the shutdown starts: a follow of the audit log for 2 s, and an upload
    // whose body is still on its way.
    let follow = {
        let (addr, token) = (server.addr, token.clone());
        tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            http1(
                tcp,
                &format!(
                    "GET /v1/audit/events/stream?after=0&seconds=2 HTTP/1.1\r\nHost: x\r\n\
                     Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                ),
            )
            .await
        })
    };
    let body = r#"{"name":"late","role":"viewer"}"#;
    let mut upload = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    upload
        .write_all(
            format!(
                "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                &body[..5]
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = std::time::Instant::now();
    let _ = server.stop.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused once the listener is closed.
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "the listener is closed during the drain"
    );
    // The upload finishes and gets its answer.
    upload.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut response = Vec::new();
    upload.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    // The follow ran its full 2 s and ended normally.
    let streamed = follow.await.unwrap();
    assert!(streamed.starts_with("HTTP/1.1 200"), "{streamed}");
    assert!(streamed.contains("event: audit"), "{streamed}");
    server.task.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));

    // Everything recorded before the end is in an intact log.
    match server.host.audit_verify(None).await.unwrap() {
        secflow_host::Integrity::Intact(report) => assert!(report.entries >= 1),
        other => panic!("{other:?}"),
    }
}
