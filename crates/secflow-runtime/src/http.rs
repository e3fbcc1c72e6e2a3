//! The `wasi:http` hook that enforces network grants.
//!
//! `wasmtime-wasi-http`'s default sender connects to whatever the host name resolves to, so
//! the check cannot stop at the URL. This sender resolves the name itself, checks every
//! address ([`crate::netpolicy::check_resolved`]), connects to a checked address, and for
//! https verifies the certificate for the original host name (SNI). Redirects are not
//! followed by wasi-http: a guest that follows one makes a new request, which is checked
//! again. Request count and response size are capped per invocation.

use crate::netpolicy::{self, NetDenial, NetGrant};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// What the network hook observed during one invocation.
#[derive(Debug, Default, Clone)]
pub struct NetLog {
    pub requests: u32,
    pub response_bytes: u64,
    pub denials: Vec<NetDenial>,
}

/// Longest the host waits for a connection or a first byte, whatever the guest asks.
const MAX_CONNECT: Duration = Duration::from_secs(10);
const MAX_FIRST_BYTE: Duration = Duration::from_secs(30);

/// Per-invocation network policy.
pub struct NetHooks {
    pub grants: Arc<Vec<NetGrant>>,
    pub max_requests: u32,
    pub max_response_bytes: u64,
    pub log: Arc<Mutex<NetLog>>,
    pub tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for NetHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetHooks")
            .field("grants", &self.grants)
            .finish()
    }
}

/// The TLS client configuration: webpki roots, ring provider, safe defaults.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

impl NetHooks {
    fn deny(&self, denial: NetDenial) -> HttpError {
        tracing::info!(%denial, "network request denied");
        let code = match denial {
            NetDenial::InternalAddress { .. } => HttpError::DestinationIpProhibited,
            _ => HttpError::HttpRequestDenied,
        };
        self.log.lock().unwrap().denials.push(denial);
        code
    }
}

impl WasiHttpHooks for NetHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let Some(host) = uri.host().map(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        }) else {
            let err = self.deny(NetDenial::BadUrl {
                url: uri.to_string(),
            });
            return Box::new(async move { Err(err) });
        };
        let tls = scheme == "https";
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let grant = {
            let mut log = self.log.lock().unwrap();
            if log.requests >= self.max_requests {
                drop(log);
                let err = self.deny(NetDenial::TooManyRequests {
                    limit: self.max_requests,
                });
                return Box::new(async move { Err(err) });
            }
            log.requests += 1;
            drop(log);
            match netpolicy::check_url(&self.grants, &scheme, &host, port) {
                Ok(grant) => grant.clone(),
                Err(denial) => {
                    let err = self.deny(denial);
                    return Box::new(async move { Err(err) });
                }
            }
        };
        let log = self.log.clone();
        let max_body = self.max_response_bytes;
        let tls_config = self.tls.clone();
        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .map_or(MAX_CONNECT, |t| t.min(MAX_CONNECT));
        let first_byte_timeout = options
            .and_then(|o| o.first_byte_timeout)
            .map_or(MAX_FIRST_BYTE, |t| t.min(MAX_FIRST_BYTE));
        Box::new(async move {
            let addrs: Vec<SocketAddr> = match tokio::time::timeout(
                connect_timeout,
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await
            {
                Err(_) => return Err(HttpError::DnsTimeout),
                Ok(Err(e)) => {
                    return Err(HttpError::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    });
                }
                Ok(Ok(addrs)) => addrs.collect(),
            };
            // Every address must pass: a name that resolves to one public and one internal
            // address is refused rather than raced.
            for addr in &addrs {
                if let Err(denial) = netpolicy::check_resolved(&grant, &host, addr.ip()) {
                    tracing::info!(%denial, "network request denied");
                    log.lock().unwrap().denials.push(denial);
                    return Err(HttpError::DestinationIpProhibited);
                }
            }
            let addr = *addrs.first().ok_or(HttpError::DestinationNotFound)?;
            let tcp =
                match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
                    .await
                {
                    Ok(stream) => stream.map_err(HttpError::Connect)?,
                    Err(_) => return Err(HttpError::ConnectionTimeout),
                };
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            *request.uri_mut() = http::Uri::builder()
                .path_and_query(path)
                .build()
                .map_err(|_| HttpError::HttpRequestUriInvalid)?;
            let (mut sender, conn_task) = if tls {
                let name = rustls::pki_types::ServerName::try_from(host.clone())?;
                let stream = tokio_rustls::TlsConnector::from(tls_config)
                    .connect(name, tcp)
                    .await
                    .map_err(HttpError::Tls)?;
                let (sender, conn) = tokio::time::timeout(
                    connect_timeout,
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)),
                )
                .await
                .map_err(|_| HttpError::ConnectionTimeout)??;
                (sender, wasmtime_wasi::runtime::spawn(conn))
            } else {
                let (sender, conn) = tokio::time::timeout(
                    connect_timeout,
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)),
                )
                .await
                .map_err(|_| HttpError::ConnectionTimeout)??;
                (sender, wasmtime_wasi::runtime::spawn(conn))
            };
            let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
                .await
                .map_err(|_| HttpError::ConnectionReadTimeout)??;
            let response = response.map(|body| {
                CappedBody {
                    inner: body.map_err(HttpError::from).boxed_unsync(),
                    seen: 0,
                    max: max_body,
                    log: log.clone(),
                }
                .boxed_unsync()
            });
            let io: IoFuture = Box::new(async move { conn_task.await.map_err(HttpError::from) });
            Ok((response, io))
        })
    }
}

/// A response body that fails once it passes `max` bytes, and records what it delivered.
struct CappedBody {
    inner: WasiBody,
    seen: u64,
    max: u64,
    log: Arc<Mutex<NetLog>>,
}

impl http_body::Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let len = data.len() as u64;
            self.seen += len;
            self.log.lock().unwrap().response_bytes += len;
            if self.seen > self.max {
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(self.max)))));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}
