//! `secflow serve`: the REST API of a SecFlow host.
//!
//! Every handler authenticates the caller's token, asks the API policies (Cedar, in the
//! host) whether the token's role may do the route's action, and then calls the same
//! `secflow-host` operation the CLI calls: the server holds no security decision of its
//! own. Errors are RFC 9457 problem documents; the OpenAPI 3.1 document is generated from
//! the handlers (`/v1/openapi.json`, checked into `docs/openapi.json`).
//!
//! Under load the server refuses rather than queues without bound: plugin runs share a
//! concurrency limit (a run that cannot start within a short wait gets 503 with
//! `Retry-After`), each token has a request rate limit (429), scan jobs wait in a bounded
//! queue (503 when full), bodies are size-limited and requests time out. Shutdown stops
//! accepting, drains in-flight requests and running scans' bookkeeping, and returns.

// Handlers return `Result<_, Problem>`; a problem (168 bytes) is built once per failed
// request and turned into a response at once, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

pub mod archive;
mod auth;
pub mod jobs;
pub mod metrics;
pub mod openapi;
mod problem;
mod routes;

pub use problem::{Problem, TYPE_BASE};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secflow_host::{ApiResource, Host};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the server runs. [`ServerConfig::default`] is what `secflow serve` uses.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest JSON body.
    pub max_json_bytes: usize,
    /// Largest upload (a package, a target archive).
    pub max_upload_bytes: usize,
    /// Whole-request deadline (reading the body included).
    pub request_timeout: Duration,
    /// Requests per second per token (bursts of twice that); 0 turns the limit off.
    pub rate_limit: u32,
    /// Plugin runs at once across all requests.
    pub max_concurrent_runs: usize,
    /// How long a run waits for a free slot before the answer is 503.
    pub run_wait: Duration,
    /// Scan jobs running at once.
    pub scan_workers: usize,
    /// Scan jobs queued or running at most; more are refused with 503.
    pub queue_capacity: usize,
    /// Directories whose paths a scan job may name instead of uploading (admin allow-list).
    pub scan_roots: Vec<PathBuf>,
    pub archive: archive::Limits,
    /// Connections open at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Serve the plugin marketplace (`/v1/market/...`) from this state directory.
    pub marketplace: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            max_json_bytes: 1 << 20,
            max_upload_bytes: 256 << 20,
            request_timeout: Duration::from_secs(60),
            rate_limit: 2000,
            max_concurrent_runs: cores * 4,
            run_wait: Duration::from_millis(250),
            scan_workers: 1,
            queue_capacity: 64,
            scan_roots: Vec::new(),
            archive: archive::Limits::default(),
            max_connections: 16_384,
            marketplace: false,
        }
    }
}

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub host: Host,
    pub metrics: metrics::Metrics,
    pub limits: Arc<Limits>,
    pub jobs: jobs::Jobs,
    pub config: Arc<ServerConfig>,
    /// The marketplace, with `--marketplace`.
    pub market: Option<secflow_market::Market>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The address a request's connection came from, put on every request by [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::IpAddr);

impl Peer {
    /// The network a client controls, as limits count it: the IPv4 address, or the /64
    /// of an IPv6 one (a host gets a whole /64 and could rotate through it).
    pub fn network(self) -> std::net::IpAddr {
        match self.0 {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => std::net::IpAddr::V4(v4),
                None => std::net::IpAddr::V6(std::net::Ipv6Addr::from_bits(
                    v6.to_bits() & !((1u128 << 64) - 1),
                )),
            },
            v4 => v4,
        }
    }
}

/// Rate and concurrency limits.
pub struct Limits {
    per_token: Option<DefaultKeyedRateLimiter<String>>,
    /// Unauthenticated refusals recorded in the audit log per second; beyond that they
    /// are counted in the metrics only, so a flood cannot fill the disk.
    audit_unauthenticated: governor::DefaultDirectRateLimiter,
    /// Anonymous marketplace writes (install receipts, ratings) per second, all clients
    /// together.
    pub(crate) market_anonymous: governor::DefaultDirectRateLimiter,
    /// The same per client network ([`Peer::network`]): one client cannot use up the
    /// shared budget of the others.
    pub(crate) market_anonymous_per_peer: DefaultKeyedRateLimiter<std::net::IpAddr>,
    runs: Arc<tokio::sync::Semaphore>,
    run_wait: Duration,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

impl Limits {
    fn new(config: &ServerConfig) -> Limits {
        let per_token = NonZeroU32::new(config.rate_limit).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2"));
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Limits {
            per_token,
            audit_unauthenticated: RateLimiter::direct(Quota::per_second(
                NonZeroU32::new(50).expect("50"),
            )),
            market_anonymous: RateLimiter::direct(
                Quota::per_second(NonZeroU32::new(100).expect("100"))
                    .allow_burst(NonZeroU32::new(200).expect("200")),
            ),
            market_anonymous_per_peer: RateLimiter::keyed(
                Quota::per_second(NonZeroU32::new(10).expect("10"))
                    .allow_burst(NonZeroU32::new(30).expect("30")),
            ),
            runs: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_runs.max(1),
            )),
            run_wait: config.run_wait,
        }
    }

    /// `None` when the token may go on, else the seconds to wait.
    pub fn check_rate(&self, token_id: &str) -> Option<u64> {
        let limiter = self.per_token.as_ref()?;
        match limiter.check_key(&token_id.to_string()) {
            Ok(()) => None,
            Err(not_until) => {
                use governor::clock::Clock;
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Some(wait.as_secs().max(1))
            }
        }
    }

    /// A slot to run a plugin in, or a 503 after a short wait.
    /// Owned, so a run that goes on after its request was dropped keeps its slot.
    pub async fn run_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
        match tokio::time::timeout(self.run_wait, self.runs.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Problem::busy(
                "every plugin-run slot is busy; retry shortly",
                1,
            )),
        }
    }
}

impl AppState {
    /// Opens the server's state over `host`: the job store (re-queuing jobs a crash
    /// interrupted) and the limits. Scan workers start with [`serve`].
    pub async fn open(host: Host, config: ServerConfig) -> anyhow::Result<AppState> {
        let metrics = metrics::Metrics::new();
        let jobs = jobs::Jobs::open(host.clone(), &config, metrics.clone()).await?;
        let market = if config.marketplace {
            let market_host = host.acting_as("api:marketplace");
            let market_config = secflow_market::MarketConfig::of(&market_host);
            Some(secflow_market::Market::open(market_host, market_config).await?)
        } else {
            None
        };
        Ok(AppState {
            market,
            limits: Arc::new(Limits::new(&config)),
            host,
            metrics,
            jobs,
            config: Arc::new(config),
        })
    }

    /// Records a request refused before a token was known (rate-limited in the log).
    pub(crate) async fn denied_unauthenticated(
        &self,
        parts: &axum::http::request::Parts,
        reason: &str,
    ) {
        self.metrics.denied("unauthenticated");
        if self.limits.audit_unauthenticated.check().is_err() {
            return;
        }
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("unmatched", |m| m.as_str())
            .to_string();
        if let Err(e) = self
            .host
            .acting_as("api:anonymous")
            .record_api_denial(
                "authenticate",
                ApiResource {
                    kind: "system",
                    id: "*",
                },
                format!("{} {route}: {reason}", parts.method),
                serde_json::json!({ "route": route }),
            )
            .await
        {
            tracing::error!(error = %e, "cannot record an API denial");
        }
    }
}

/// The router with every route and the middleware (request id, metrics, timeout).
pub fn router(state: AppState) -> Router {
    routes::routes(&state)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Request id, tracing span, metrics and the request deadline, around every request.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = request.method().to_string();
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let deadline = state.config.request_timeout;
    let mut response = {
        use tracing::Instrument;
        match tokio::time::timeout(deadline, next.run(request).instrument(span.clone())).await {
            Ok(response) => response,
            Err(_) => Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
                format!(
                    "the request did not complete within {} s (a slow upload or a long run); retry, or send the body faster",
                    deadline.as_secs()
                ),
            )
            .into_response(),
        }
    };
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    state.metrics.http(&route, &method, status, seconds);
    tracing::info!(parent: &span, status, ms = seconds * 1000.0, "request");
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

/// Serves until `shutdown` resolves, then drains: no new connections, in-flight requests
/// finish (up to `drain` long), scan workers stop after their current job's bookkeeping.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) -> anyhow::Result<()> {
    use hyper_util::service::TowerToHyperService;

    let tls = match &state.config.tls {
        Some((cert, key)) => Some(secflow_listen::tls_acceptor(cert, key)?),
        None => None,
    };
    let workers = state.jobs.start_workers(state.config.scan_workers);
    let app = router(state.clone());
    let listen = secflow_listen::Listen {
        max_connections: state.config.max_connections,
        tls,
        drain,
        ..secflow_listen::Listen::default()
    };
    let service = |peer: std::net::SocketAddr| {
        let peer_ip = Peer(peer.ip());
        TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(peer_ip);
                request
            },
        ))
    };
    secflow_listen::serve(listener, listen, service, shutdown).await?;
    state.jobs.stop(workers).await;
    // The statistics of the last clean runs, queued rather than waited for.
    if let Err(e) = state.host.flush().await {
        tracing::warn!(error = %e, "run statistics not recorded at shutdown");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Peer;

    #[test]
    fn limits_count_an_ipv6_client_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let net = |s: &str| Peer(s.parse().unwrap()).network().to_string();
        assert_eq!(net("203.0.113.7"), "203.0.113.7");
        assert_eq!(net("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(net("2001:db8:1:2:ffff::1"), "2001:db8:1:2::");
        assert_ne!(net("2001:db8:1:3::1"), net("2001:db8:1:2::1"));
        assert_eq!(net("::ffff:198.51.100.1"), "198.51.100.1");
    }
}
