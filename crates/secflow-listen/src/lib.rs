//! The accept loop shared by SecFlow's HTTP front ends (`secflow serve`, `secflow proxy`),
//! so both defend the same way against clients that would exhaust them: a cap on open
//! connections (the next waits in the kernel's backlog, not in memory), a deadline for a
//! request's headers and for the TLS handshake (a slow client cannot hold a connection
//! open by trickling bytes), HTTP/1.1 and HTTP/2 on the same port (ALPN under TLS), and a
//! graceful drain at shutdown.

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use tokio_rustls::TlsAcceptor;

/// How a front end accepts connections.
#[derive(Clone)]
pub struct Listen {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Serve HTTPS with this acceptor; plain HTTP when unset.
    pub tls: Option<TlsAcceptor>,
    /// How long a client may take to send a request's headers, and a TLS handshake.
    pub header_read_timeout: Duration,
    /// How long the connections in flight may take to finish at shutdown.
    pub drain: Duration,
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listen")
            .field("max_connections", &self.max_connections)
            .field("tls", &self.tls.is_some())
            .field("header_read_timeout", &self.header_read_timeout)
            .field("drain", &self.drain)
            .finish()
    }
}

impl Default for Listen {
    fn default() -> Listen {
        Listen {
            max_connections: 10_000,
            tls: None,
            header_read_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(30),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves connections from `listener` until `shutdown` completes, then drains the ones
/// in flight (at most `listen.drain`). `service` makes the service of one connection from
/// the client's address.
pub async fn serve<S, B>(
    listener: tokio::net::TcpListener,
    listen: Listen,
    service: impl Fn(SocketAddr) -> S,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()>
where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(listen.max_connections.max(1)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listen.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => permit?,
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = service(peer);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = listen.tls.clone();
        let handshake = listen.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(listen.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "some connections did not finish within {} s",
            listen.drain.as_secs()
        );
    }
    Ok(())
}

/// A TLS acceptor from a PEM certificate chain and private key (TLS 1.2 and 1.3, ALPN h2
/// and http/1.1). Errors name the file and what is wrong with it.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert)
            .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", cert.display());
    }
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key)
            .with_context(|| format!("cannot read the TLS key {}", key.display()))?,
    ))
    .with_context(|| format!("{} is not a PEM private key", key.display()))?
    .with_context(|| format!("{} holds no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
