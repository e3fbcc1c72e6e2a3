//! `secflow proxy`: a reverse proxy that runs installed proxy-filter plugins on live
//! traffic.
//!
//! Every filter call goes through the host's operations, the same as `secflow run ID`:
//! clearance (installed, enabled, not quarantined, not revoked, signatures and policies) at
//! every request, so a plugin disabled or revoked while the proxy runs stops at the next
//! request; the sandboxed call with the manifest's limits on a fresh instance (nothing a
//! filter keeps in memory reaches the next request); the run's statistics, violations and
//! audit events. A filter's failure (error, trap, timeout, memory limit) refuses the
//! exchange unless the filter is configured `failure = "open"`, which the host refuses for
//! security filters without an explicit insecure option. Every decision that is not a
//! plain allow is a `proxy.decision` audit event.
//!
//! Response filters see the whole response: it is buffered (up to
//! `limits.max-response-body`) before the first byte goes to the client, so in closed mode
//! no unfiltered byte is ever released. Routes without response filters stream.
//!
//! The configuration in force is a snapshot each exchange takes once, at its start:
//! [`Proxy::reload`] (SIGHUP in the CLI) checks a new one as at start and swaps it in,
//! so exchanges in flight finish under the one they began with and no connection is
//! dropped. The metrics ([`metrics::Metrics`], on a separate admin bind) outlive reloads.

pub mod config;
pub mod metrics;

use bytes::Bytes;
use config::{FilterConfig, Phase, ProxyConfig, RouteConfig};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use metrics::Metrics;
use secflow_host::{Cleared, FailureMode, FilterDecision, FilterMode, Host};
use secflow_runtime::bindings as b;
use secflow_runtime::{Call, Tighter};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The body of every proxy response.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Problem `type` URIs: this base and the reason code.
pub const TYPE_BASE: &str = "https://secflow.dev/problems/proxy-";

/// A proxy over one host (state directory) and a configuration that a reload replaces
/// while it serves. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
}

struct Shared {
    host: Host,
    http: reqwest::Client,
    metrics: Metrics,
    tls: Option<secflow_listen::TlsAcceptor>,
    /// The configuration in force. An exchange takes it once, at its start, and finishes
    /// under it: a reload never changes the filters of a request half-way.
    current: RwLock<Snapshot>,
    /// Serializes reloads (two SIGHUPs in a row apply in order).
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("tls", &self.tls.is_some())
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// One configuration in force, with every filter cleared when it was loaded.
#[derive(Clone, Debug)]
struct Snapshot {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    host: Host,
    config: ProxyConfig,
    routes: Vec<Route>,
    http: reqwest::Client,
    metrics: Metrics,
    /// Starts at 1; one more at each applied reload.
    generation: u64,
}

#[derive(Debug)]
struct Route {
    /// Its place in the configuration (streams find their route again by it).
    index: usize,
    config: RouteConfig,
    upstream: reqwest::Url,
    filters: Vec<Filter>,
}

#[derive(Debug)]
struct Filter {
    config: FilterConfig,
    plugin_config: serde_json::Value,
    /// The per-call deadline and fuel the configuration sets, tighter than the manifest's.
    tighter: Tighter,
}

impl Filter {
    fn runs_on(&self, phase: Phase) -> bool {
        self.config.phases.contains(&phase)
    }

    /// Its settings, as the audit log's `proxy.config` events and `/admin/filters` show
    /// them.
    fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "plugin": self.config.plugin,
            "phases": self.config.phases.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "failure": self.config.failure,
            "mode": self.config.mode,
            "timeout_ms": self.config.timeout_ms,
            "fuel": self.config.fuel,
        })
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never
/// forwarded in either direction.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Proxy {
    /// Checks the configuration against the host: every filter is cleared now (the same
    /// decision as `secflow run ID`), is a proxy filter, and may use its failure mode and
    /// limits; the TLS files, when set, are read. The start is recorded in the audit log
    /// (`proxy.config`, with the routes and their filters).
    pub async fn new(host: Host, config: ProxyConfig) -> anyhow::Result<Proxy> {
        let tls = match &config.tls {
            Some(tls) => Some(secflow_listen::tls_acceptor(&tls.cert, &tls.key)?),
            None => None,
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("secflow-proxy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let metrics = Metrics::new();
        let snapshot = Snapshot::build(&host, config, &http, &metrics, 1).await?;
        host.record_proxy_config("start", String::new(), snapshot.summary())
            .await?;
        Ok(Proxy {
            shared: Arc::new(Shared {
                host,
                http,
                metrics,
                tls,
                current: RwLock::new(snapshot),
                reloading: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Replaces the configuration, without dropping a connection: exchanges in flight
    /// finish under the one they started with, the next ones use the new one. The new
    /// configuration is checked as at start (every filter cleared); what is bound at start
    /// (`listen`, `admin`, `tls`, `limits.max-connections`, `limits.header-timeout-ms`)
    /// cannot change. A refused reload leaves the previous configuration in force. Both
    /// are recorded in the audit log; returns the new generation.
    pub async fn reload(&self, config: ProxyConfig) -> anyhow::Result<u64> {
        let _one_at_a_time = self.shared.reloading.lock().await;
        let host = &self.shared.host;
        let current = self.current();
        let generation = current.inner.generation + 1;
        let built = match fixed_at_start(&current.inner.config, &config) {
            Err(why) => Err(anyhow::anyhow!(why)),
            Ok(()) => {
                Snapshot::build(
                    host,
                    config,
                    &self.shared.http,
                    &self.shared.metrics,
                    generation,
                )
                .await
            }
        };
        match built {
            Ok(snapshot) => {
                // Recorded before it takes effect: no request is filtered by an
                // unrecorded configuration.
                host.record_proxy_config("reload", String::new(), snapshot.summary())
                    .await?;
                *self
                    .shared
                    .current
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = snapshot;
                self.shared.metrics.reloaded(true, generation);
                tracing::info!(generation, "proxy configuration reloaded");
                Ok(generation)
            }
            Err(e) => {
                let reason = format!("{e:#}");
                self.refuse_reload(&reason).await?;
                Err(anyhow::anyhow!(
                    "reload refused, the previous configuration stays in force: {reason}"
                ))
            }
        }
    }

    /// Records a reload that was refused before it reached [`Proxy::reload`] (the file
    /// could not be read or parsed): the previous configuration stays in force.
    pub async fn refuse_reload(&self, reason: &str) -> anyhow::Result<()> {
        let current = self.current();
        self.shared
            .metrics
            .reloaded(false, current.inner.generation);
        self.shared
            .host
            .record_proxy_config("reload-refused", reason.to_string(), current.summary())
            .await?;
        Ok(())
    }

    /// The configuration in force.
    fn current(&self) -> Snapshot {
        self.shared
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The proxy's metrics (also served on the admin bind).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Serves until `shutdown` completes, then drains the connections in flight (at most
    /// `drain`). Over TLS when the configuration sets `[tls]`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
        drain: Duration,
    ) -> anyhow::Result<()> {
        let limits = self.current().inner.config.limits.clone();
        let listen = secflow_listen::Listen {
            max_connections: limits.max_connections,
            tls: self.shared.tls.clone(),
            header_read_timeout: Duration::from_millis(limits.header_timeout_ms),
            drain,
        };
        let host = self.shared.host.clone();
        let service = |peer: SocketAddr| {
            let proxy = self.clone();
            hyper::service::service_fn(move |request| {
                let proxy = proxy.clone();
                async move { Ok::<_, std::convert::Infallible>(proxy.handle(request, peer).await) }
            })
        };
        secflow_listen::serve(listener, listen, service, shutdown).await?;
        // The audit events of the last clean filter runs, queued rather than waited for.
        host.flush().await?;
        Ok(())
    }

    /// Serves the admin endpoints until `shutdown` completes: `/metrics` (Prometheus
    /// text), `/admin/filters` (each route's filters with their settings and counts, JSON)
    /// and `/livez`. Meant for a loopback or otherwise private address: they show traffic
    /// figures, and change nothing.
    pub async fn serve_admin(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let listen = secflow_listen::Listen {
            max_connections: 64,
            drain: Duration::from_secs(1),
            ..secflow_listen::Listen::default()
        };
        let service = |_peer: SocketAddr| {
            let proxy = self.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let proxy = proxy.clone();
                async move { Ok::<_, std::convert::Infallible>(proxy.admin(&request)) }
            })
        };
        secflow_listen::serve(listener, listen, service, shutdown).await
    }

    /// One admin request.
    fn admin(&self, request: &Request<Incoming>) -> Response<Body> {
        if request.method() != http::Method::GET {
            return problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "the admin endpoints only answer GET".into(),
                None,
            );
        }
        let (content_type, body) = match request.uri().path() {
            "/livez" => ("text/plain; charset=utf-8", "ok\n".to_string()),
            "/metrics" => (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.shared.metrics.render(),
            ),
            "/admin/filters" => ("application/json", self.filter_report().to_string()),
            other => {
                return problem(
                    StatusCode::NOT_FOUND,
                    "no-route",
                    format!("no admin endpoint {other}; try /metrics, /admin/filters or /livez"),
                    None,
                );
            }
        };
        let mut response = Response::new(full(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    /// Every route's filters, their settings and their counts.
    fn filter_report(&self) -> serde_json::Value {
        let current = self.current();
        let metrics = &self.shared.metrics;
        let routes: Vec<serde_json::Value> = current
            .inner
            .routes
            .iter()
            .map(|route| {
                let filters: Vec<serde_json::Value> = route
                    .filters
                    .iter()
                    .map(|f| {
                        let mut counts = serde_json::Map::new();
                        for phase in &f.config.phases {
                            let side = phase.as_str();
                            counts.insert(
                                side.into(),
                                serde_json::json!(metrics.counts(
                                    &route.config.name,
                                    &f.config.plugin,
                                    side
                                )),
                            );
                        }
                        let mut report = f.settings();
                        report["counts"] = counts.into();
                        report
                    })
                    .collect();
                serde_json::json!({
                    "route": route.config.name,
                    "path_prefix": route.config.path_prefix,
                    "upstream": route.config.upstream,
                    "filters": filters,
                })
            })
            .collect();
        serde_json::json!({
            "generation": current.inner.generation,
            "routes": routes,
        })
    }

    /// One exchange: request filters, the upstream, response filters; counted in the
    /// metrics by route and status.
    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = std::time::Instant::now();
        let current = self.current();
        let mut route = String::from("-");
        let response = current.exchange(request, peer, &mut route).await;
        self.shared
            .metrics
            .request(&route, response.status().as_u16(), started.elapsed());
        response
    }
}

/// What a reload cannot change, since it is bound when the proxy starts.
fn fixed_at_start(old: &ProxyConfig, new: &ProxyConfig) -> Result<(), String> {
    let tls = |c: &ProxyConfig| c.tls.as_ref().map(|t| (t.cert.clone(), t.key.clone()));
    for (what, same) in [
        ("listen", old.listen == new.listen),
        ("admin", old.admin == new.admin),
        ("tls", tls(old) == tls(new)),
        (
            "limits.max-connections",
            old.limits.max_connections == new.limits.max_connections,
        ),
        (
            "limits.header-timeout-ms",
            old.limits.header_timeout_ms == new.limits.header_timeout_ms,
        ),
    ] {
        if !same {
            return Err(format!(
                "{what} changed; it is bound when the proxy starts, so restart the proxy to change it"
            ));
        }
    }
    Ok(())
}

impl Snapshot {
    /// Checks `config` against the host: every filter is cleared now, is a proxy filter,
    /// and may use its failure mode and limits.
    async fn build(
        host: &Host,
        config: ProxyConfig,
        http: &reqwest::Client,
        metrics: &Metrics,
        generation: u64,
    ) -> anyhow::Result<Snapshot> {
        let mut routes = Vec::new();
        for route in &config.routes {
            let upstream = reqwest::Url::parse(&route.upstream)?;
            let mut filters = Vec::new();
            for filter in &route.filters {
                let cleared = host.clear(&filter.plugin).await.map_err(|e| {
                    anyhow::anyhow!("route {}: filter {}: {e}", route.name, filter.plugin)
                })?;
                secflow_host::check_filter(&cleared, filter.failure, filter.insecure_fail_open)
                    .map_err(|e| anyhow::anyhow!("route {}: {e}", route.name))?;
                let tighter = Tighter {
                    timeout_ms: filter.timeout_ms,
                    fuel: filter.fuel,
                };
                secflow_host::check_tighter(&cleared, &tighter)
                    .map_err(|e| anyhow::anyhow!("route {}: {e}", route.name))?;
                let plugin_config = match &filter.config {
                    Some(table) => serde_json::to_value(table)?,
                    None => serde_json::json!({}),
                };
                filters.push(Filter {
                    config: filter.clone(),
                    plugin_config,
                    tighter,
                });
            }
            routes.push(Route {
                index: routes.len(),
                config: route.clone(),
                upstream,
                filters,
            });
        }
        Ok(Snapshot {
            inner: Arc::new(Inner {
                host: host.clone(),
                config,
                routes,
                http: http.clone(),
                metrics: metrics.clone(),
                generation,
            }),
        })
    }

    /// What the audit log records of this configuration.
    fn summary(&self) -> serde_json::Value {
        let inner = &self.inner;
        serde_json::json!({
            "generation": inner.generation,
            "listen": inner.config.listen.to_string(),
            "tls": inner.config.tls.is_some(),
            "routes": inner.routes.iter().map(|r| serde_json::json!({
                "name": r.config.name,
                "host": r.config.host,
                "path_prefix": r.config.path_prefix,
                "upstream": r.config.upstream,
                "filters": r.filters.iter().map(Filter::settings).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The route for a request: its host matches (or the route names none) and the longest
    /// path prefix.
    fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.inner
            .routes
            .iter()
            .filter(|r| match (&r.config.host, host) {
                (None, _) => true,
                (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
                (Some(_), None) => false,
            })
            .filter(|r| path.starts_with(&r.config.path_prefix))
            .max_by_key(|r| r.config.path_prefix.len())
    }

    /// One exchange under this configuration: request filters, the upstream, response
    /// filters. `matched` is set to the route's name once one matches.
    async fn exchange(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        matched: &mut String,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_string());
        let path = parts.uri.path().to_string();
        let Some(route) = self.route(host.as_deref(), &path) else {
            return problem(
                StatusCode::NOT_FOUND,
                "no-route",
                format!("no route for {path}"),
                None,
            );
        };
        matched.clone_from(&route.config.name);
        let limits = &self.inner.config.limits;
        let limit = limits.max_request_body;
        let read = tokio::time::timeout(
            Duration::from_millis(limits.body_timeout_ms),
            Limited::new(body, limit).collect(),
        );
        let Ok(read) = read.await else {
            return problem(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                format!(
                    "the request body did not arrive within {} ms (limits.body-timeout-ms)",
                    limits.body_timeout_ms
                ),
                None,
            );
        };
        let body = match read {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request-too-large",
                    format!("the request body is larger than {limit} bytes"),
                    None,
                );
            }
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    format!("the request body could not be read: {e}"),
                    None,
                );
            }
        };
        let mut headers = Vec::with_capacity(parts.headers.len());
        for (name, value) in &parts.headers {
            let Ok(value) = value.to_str() else {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "bad-header",
                    format!("header {name} is not visible ASCII; filters cannot judge it"),
                    None,
                );
            };
            headers.push((name.as_str().to_string(), value.to_string()));
        }
        let mut exchange = Exchange {
            route,
            line: format!("{} {path}", parts.method),
            decisions: Vec::new(),
        };
        let request = b::HttpRequest {
            method: parts.method.as_str().to_string(),
            uri: parts
                .uri
                .path_and_query()
                .map_or_else(|| path.clone(), |p| p.as_str().to_string()),
            headers,
            body: body.to_vec(),
        };

        let request = match self
            .run_filters(
                &mut exchange,
                Phase::Request,
                request,
                |r| Call::OnRequest(r.clone()),
                request_verdict,
                check_request,
            )
            .await
        {
            Ok(request) => request,
            Err(refusal) => return self.finish(exchange, refusal).await,
        };

        let filters_response = route.filters.iter().any(|f| f.runs_on(Phase::Response));
        let upstream = match self
            .forward(route, &request, peer, host.as_deref(), filters_response)
            .await
        {
            Ok(upstream) => upstream,
            Err(refusal) => return self.finish(exchange, refusal).await,
        };
        if !filters_response {
            let status = upstream.status();
            let headers = response_headers(upstream.headers());
            let stream = futures_util::StreamExt::map(upstream.bytes_stream(), |chunk| {
                chunk.map(Frame::data).map_err(std::io::Error::other)
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            return self.finish(exchange, response).await;
        }

        let status = upstream.status().as_u16();
        let headers: Vec<(String, String)> = upstream
            .headers()
            .iter()
            .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let event_stream = upstream
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        let limit = self.inner.config.limits.max_response_body;
        if upstream.headers().get(header::CONTENT_LENGTH).is_some() && !event_stream {
            let body = match read_limited(upstream, limit).await {
                Ok(body) => body,
                Err(why) => {
                    let refusal =
                        problem(StatusCode::BAD_GATEWAY, "response-unfilterable", why, None);
                    return self.finish(exchange, refusal).await;
                }
            };
            let response = b::HttpResponse {
                status,
                headers,
                body,
            };
            return match self
                .filter_response(&mut exchange, &request, response)
                .await
            {
                Ok(mut response) => {
                    let body = std::mem::take(&mut response.body);
                    let out = to_hyper(&response, full(body));
                    self.finish(exchange, out).await
                }
                Err(refusal) => self.finish(exchange, refusal).await,
            };
        }

        // A stream (server-sent events, or chunked without a length): filtered window by
        // window. Each window is what is held back plus what arrived; every response
        // filter passes it before anything is released, and the last `stream-hold-back`
        // bytes stay unreleased until more arrives (a secret up to that long, split
        // anywhere across chunks, is whole in some window before any of it leaves).
        let hold = route.config.stream_hold_back;
        let mut windows = Windows {
            upstream,
            pending: Vec::new(),
            hold,
            limit,
            index: 0,
        };
        // The head goes out with the first window, once it has passed and its decisions
        // are recorded: a refusal there is still a clean problem answer.
        let (filtered, released, last) = match self
            .next_window(&mut windows, &mut exchange, &request, status, &headers)
            .await
        {
            Ok(window) => window,
            Err(refusal) => return refusal,
        };
        let (sender, receiver) =
            tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let body = StreamBody::new(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
        ));
        let out = to_hyper(&filtered, BodyExt::boxed(body));
        if !released.is_empty()
            && sender
                .send(Ok(Frame::data(Bytes::from(released))))
                .await
                .is_err()
        {
            return out;
        }
        if !last {
            let proxy = self.clone();
            let route_index = route.index;
            let line = exchange.line.clone();
            tokio::spawn(async move {
                let route = &proxy.inner.routes[route_index];
                let mut exchange = Exchange {
                    route,
                    line,
                    decisions: Vec::new(),
                };
                loop {
                    let (_, released, last) = match proxy
                        .next_window(&mut windows, &mut exchange, &request, status, &headers)
                        .await
                    {
                        Ok(window) => window,
                        Err(refusal) => {
                            // Blocked, failed closed, unreadable or not recordable: the
                            // stream is cut here; nothing of this window was released.
                            tracing::warn!(
                                route = %route.config.name,
                                status = %refusal.status(),
                                "response stream cut"
                            );
                            proxy.inner.metrics.stream_cut();
                            let _ = sender
                                .send(Err(std::io::Error::other(
                                    "the response stream was stopped",
                                )))
                                .await;
                            return;
                        }
                    };
                    if !released.is_empty()
                        && sender
                            .send(Ok(Frame::data(Bytes::from(released))))
                            .await
                            .is_err()
                    {
                        return; // the client went away
                    }
                    if last {
                        return;
                    }
                }
            });
        }
        out
    }

    /// Runs the route's response filters, in order, on `response` (a whole body or one
    /// window of a stream). `Err` is the refusal: a block, or a closed filter's failure.
    async fn filter_response(
        &self,
        exchange: &mut Exchange<'_>,
        request: &b::HttpRequest,
        response: b::HttpResponse,
    ) -> Result<b::HttpResponse, Response<Body>> {
        self.run_filters(
            exchange,
            Phase::Response,
            response,
            |r| Call::OnResponse(request.clone(), r.clone()),
            response_verdict,
            check_response,
        )
        .await
    }

    /// Runs the route's filters of `phase`, in order, on `subject` (the request or the
    /// response): each verdict applied (or, in shadow mode, only recorded), each failure
    /// recorded and, for a closed filter, the refusal. `Err` is the refusal.
    async fn run_filters<T>(
        &self,
        exchange: &mut Exchange<'_>,
        phase: Phase,
        mut subject: T,
        call: impl Fn(&T) -> Call,
        verdict_of: fn(secflow_runtime::Output) -> Result<Verdict<T>, secflow_runtime::Output>,
        check: fn(&T) -> Result<(), String>,
    ) -> Result<T, Response<Body>> {
        let route = exchange.route;
        let side = phase.as_str();
        for filter in route.filters.iter().filter(|f| f.runs_on(phase)) {
            let started = std::time::Instant::now();
            let called = self.call(filter, call(&subject)).await;
            let took = started.elapsed();
            let count = |outcome: &str| {
                self.inner.metrics.filter_call(
                    &route.config.name,
                    &filter.config.plugin,
                    side,
                    outcome,
                    took,
                );
            };
            let (cleared, verdict) = match called {
                Ok((cleared, output)) => match verdict_of(output) {
                    Ok(verdict) => (cleared, verdict),
                    Err(other) => {
                        count("invalid-verdict");
                        let message = format!("returned {} to on-{side}", output_name(&other));
                        match exchange.failure(
                            filter,
                            Some(&cleared),
                            side,
                            "invalid-verdict",
                            message,
                        ) {
                            Some(refusal) => return Err(refusal),
                            None => continue,
                        }
                    }
                },
                Err((cleared, code, message)) => {
                    count(code);
                    match exchange.failure(filter, cleared.as_ref(), side, code, message) {
                        Some(refusal) => return Err(refusal),
                        None => continue,
                    }
                }
            };
            let shadow = filter.config.mode == FilterMode::Shadow;
            match verdict {
                Verdict::Allow => count("allow"),
                Verdict::Block(block) => {
                    count(if shadow { "shadow-block" } else { "block" });
                    exchange.record(
                        filter,
                        &cleared,
                        side,
                        if shadow { "shadow-block" } else { "block" },
                        block.reason.clone(),
                    );
                    if !shadow {
                        return Err(blocked(&filter.config.plugin, &block));
                    }
                }
                Verdict::Modify(changed) => {
                    if let Err(why) = check(&changed) {
                        count("invalid-verdict");
                        match exchange.failure(filter, Some(&cleared), side, "invalid-verdict", why)
                        {
                            Some(refusal) => return Err(refusal),
                            None => continue,
                        }
                    }
                    count(if shadow { "shadow-modify" } else { "modify" });
                    exchange.record(
                        filter,
                        &cleared,
                        side,
                        if shadow { "shadow-modify" } else { "modify" },
                        String::new(),
                    );
                    if !shadow {
                        subject = changed;
                    }
                }
            }
        }
        Ok(subject)
    }

    /// The next window of a stream through the response filters, its decisions recorded:
    /// the filtered window (its body moved out), the bytes released now, and whether the
    /// stream ended. `Err` is the refusal: an unreadable upstream, a block, a closed
    /// filter's failure, or decisions that cannot be recorded.
    async fn next_window(
        &self,
        windows: &mut Windows,
        exchange: &mut Exchange<'_>,
        request: &b::HttpRequest,
        status: u16,
        headers: &[(String, String)],
    ) -> Result<(b::HttpResponse, Vec<u8>, bool), Response<Body>> {
        let (body, last) = windows
            .next()
            .await
            .map_err(|why| problem(StatusCode::BAD_GATEWAY, "response-unfilterable", why, None))?;
        let response = b::HttpResponse {
            status,
            headers: with_window(headers, windows.index, last),
            body,
        };
        let verdict = self.filter_response(exchange, request, response).await;
        self.record(exchange).await?;
        let mut filtered = verdict?;
        let released = windows.release(std::mem::take(&mut filtered.body), last);
        Ok((filtered, released, last))
    }

    /// Records the decisions made so far (and forgets them). A decision that cannot be
    /// recorded turns the answer into a 503: the proxy never acts unaudited.
    async fn record(&self, exchange: &mut Exchange<'_>) -> Result<(), Response<Body>> {
        let taken = std::mem::take(&mut exchange.decisions);
        let decisions: Vec<(&Cleared, FilterDecision<'_>)> =
            taken.iter().map(|(c, d)| (c, d.clone())).collect();
        self.inner
            .host
            .record_filter_decisions(&decisions)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "filter decisions not recorded");
                problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit-unavailable",
                    "the audit log cannot be written; nothing is forwarded unrecorded".into(),
                    None,
                )
            })
    }

    /// Clears the filter's plugin now and calls it. `Err` carries the reason code and
    /// message of a failure (refused clearance, a sandbox stop, the plugin's own error).
    async fn call(
        &self,
        filter: &Filter,
        call: Call,
    ) -> Result<(Cleared, secflow_runtime::Output), (Option<Cleared>, &'static str, String)> {
        let host = &self.inner.host;
        let cleared = host
            .clear(&filter.config.plugin)
            .await
            .map_err(|e| (None, "refused", e.to_string()))?;
        // Checked again on the clearance of this request: an upgrade since the start may
        // have made the plugin a security filter, or stopped it metering fuel.
        if let Err(e) = secflow_host::check_filter(
            &cleared,
            filter.config.failure,
            filter.config.insecure_fail_open,
        )
        .and_then(|()| secflow_host::check_tighter(&cleared, &filter.tighter))
        {
            return Err((Some(cleared), "refused", e.to_string()));
        }
        let (invocation, _) = match host
            .invoke_live(&cleared, call, &filter.plugin_config, filter.tighter)
            .await
        {
            Ok(done) => done,
            Err(e) => return Err((Some(cleared), "refused", e.to_string())),
        };
        match invocation.outcome {
            Ok(output) => Ok((cleared, output)),
            Err(error) => {
                let code = if error.kind() == "timeout" {
                    "timeout"
                } else {
                    "error"
                };
                Err((Some(cleared), code, error.to_string()))
            }
        }
    }

    /// Sends the (filtered) request upstream.
    async fn forward(
        &self,
        route: &Route,
        request: &b::HttpRequest,
        peer: SocketAddr,
        host: Option<&str>,
        identity: bool,
    ) -> Result<reqwest::Response, Response<Body>> {
        let mut url = route.upstream.clone();
        let (path, query) = match request.uri.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (request.uri.as_str(), None),
        };
        let joined = format!("{}{path}", route.upstream.path().trim_end_matches('/'));
        url.set_path(&joined);
        url.set_query(query);
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            problem(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "not an HTTP method".into(),
                None,
            )
        })?;
        let mut headers = reqwest::header::HeaderMap::new();
        let named_by_connection: Vec<String> = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
            .collect();
        for (name, value) in &request.headers {
            let lower = name.to_ascii_lowercase();
            if HOP_BY_HOP.contains(&lower.as_str())
                || named_by_connection.contains(&lower)
                || lower == "host"
                || lower == "content-length"
                || lower == "x-forwarded-for"
                || (identity && lower == "accept-encoding")
            {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        // Forwarded-for: what the client said, then the address it came from.
        let mut forwarded: Vec<String> = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for"))
            .map(|(_, v)| v.clone())
            .collect();
        forwarded.push(peer.ip().to_string());
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&forwarded.join(", ")) {
            headers.insert("x-forwarded-for", v);
        }
        headers.insert(
            "x-forwarded-proto",
            reqwest::header::HeaderValue::from_static(if self.inner.config.tls.is_some() {
                "https"
            } else {
                "http"
            }),
        );
        if let Some(host) = host.and_then(|h| reqwest::header::HeaderValue::from_str(h).ok()) {
            headers.insert("x-forwarded-host", host);
        }
        if identity {
            // Response filters judge what they can read, not compressed bytes.
            headers.insert(
                reqwest::header::ACCEPT_ENCODING,
                reqwest::header::HeaderValue::from_static("identity"),
            );
        }
        let sent = self
            .inner
            .http
            .request(method, url)
            .headers(headers)
            .body(request.body.clone())
            .timeout(Duration::from_millis(route.config.timeout_ms))
            .send()
            .await;
        sent.map_err(|e| {
            if e.is_timeout() {
                problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream-timeout",
                    format!(
                        "route {}: the upstream did not answer within {} ms",
                        route.config.name, route.config.timeout_ms
                    ),
                    None,
                )
            } else {
                problem(
                    StatusCode::BAD_GATEWAY,
                    "upstream-unavailable",
                    format!(
                        "route {}: the upstream cannot be reached",
                        route.config.name
                    ),
                    None,
                )
            }
        })
    }

    /// Records the exchange's decisions, then answers (a 503 instead when they cannot be
    /// recorded).
    async fn finish(&self, mut exchange: Exchange<'_>, response: Response<Body>) -> Response<Body> {
        match self.record(&mut exchange).await {
            Ok(()) => response,
            Err(refusal) => refusal,
        }
    }
}

/// The decisions of one exchange, recorded when it ends.
struct Exchange<'a> {
    route: &'a Route,
    line: String,
    decisions: Vec<(Cleared, FilterDecision<'a>)>,
}

impl<'a> Exchange<'a> {
    fn record(
        &mut self,
        filter: &Filter,
        cleared: &Cleared,
        phase: &'a str,
        decision: &'a str,
        reason: String,
    ) {
        self.decisions.push((
            cleared.clone(),
            FilterDecision {
                route: &self.route.config.name,
                phase,
                decision,
                reason,
                mode: filter.config.mode,
                failure: filter.config.failure,
                request: self.line.clone(),
            },
        ));
    }

    /// A filter failed: recorded; closed refuses the exchange (`Some`), open goes on.
    fn failure(
        &mut self,
        filter: &Filter,
        cleared: Option<&Cleared>,
        phase: &'a str,
        code: &'static str,
        message: String,
    ) -> Option<Response<Body>> {
        let open = filter.config.failure == FailureMode::Open;
        match cleared {
            Some(cleared) => self.record(
                filter,
                cleared,
                phase,
                if open { "failed-open" } else { code },
                format!("{code}: {message}"),
            ),
            // Not cleared (uninstalled, disabled, quarantined, revoked): clearance already
            // recorded its refusal.
            None => tracing::warn!(filter = %filter.config.plugin, %message, "filter refused"),
        }
        if open {
            return None;
        }
        Some(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "filter-failed",
            format!(
                "filter {} failed on the {phase} ({code}); the exchange is refused (failure = closed)",
                filter.config.plugin
            ),
            Some(&filter.config.plugin),
        ))
    }
}

/// A filter's verdict on either side of the exchange.
enum Verdict<T> {
    Allow,
    Block(b::Block),
    Modify(T),
}

fn request_verdict(
    output: secflow_runtime::Output,
) -> Result<Verdict<b::HttpRequest>, secflow_runtime::Output> {
    match output {
        secflow_runtime::Output::RequestVerdict(v) => Ok(match v {
            b::RequestVerdict::Allow => Verdict::Allow,
            b::RequestVerdict::Block(block) => Verdict::Block(block),
            b::RequestVerdict::Modify(request) => Verdict::Modify(request),
        }),
        other => Err(other),
    }
}

fn response_verdict(
    output: secflow_runtime::Output,
) -> Result<Verdict<b::HttpResponse>, secflow_runtime::Output> {
    match output {
        secflow_runtime::Output::ResponseVerdict(v) => Ok(match v {
            b::ResponseVerdict::Allow => Verdict::Allow,
            b::ResponseVerdict::Block(block) => Verdict::Block(block),
            b::ResponseVerdict::Modify(response) => Verdict::Modify(response),
        }),
        other => Err(other),
    }
}

fn output_name(output: &secflow_runtime::Output) -> &'static str {
    match output {
        secflow_runtime::Output::RequestVerdict(_) => "a request verdict",
        secflow_runtime::Output::ResponseVerdict(_) => "a response verdict",
        _ => "another kind's output",
    }
}

/// A filter's block as problem+json. Statuses outside 400–599 become 403.
fn blocked(plugin: &str, block: &b::Block) -> Response<Body> {
    let status = StatusCode::from_u16(block.status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::FORBIDDEN);
    problem(status, "blocked", block.reason.clone(), Some(plugin))
}

/// A modified request must still be a request the upstream can be sent.
fn check_request(request: &b::HttpRequest) -> Result<(), String> {
    http::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
        format!(
            "the modified request's method `{}` is not a method",
            request.method
        )
    })?;
    if !request.uri.starts_with('/') || request.uri.parse::<http::Uri>().is_err() {
        return Err(format!(
            "the modified request's uri `{}` is not an origin-form path",
            request.uri
        ));
    }
    check_headers(&request.headers)
}

fn check_response(response: &b::HttpResponse) -> Result<(), String> {
    if !(100..=599).contains(&response.status) {
        return Err(format!(
            "the modified response's status {} is not a status",
            response.status
        ));
    }
    check_headers(&response.headers)
}

fn check_headers(headers: &[(String, String)]) -> Result<(), String> {
    for (name, value) in headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() || HeaderValue::from_str(value).is_err()
        {
            return Err(format!(
                "the modified header `{}` is not a valid header",
                name.escape_debug()
            ));
        }
    }
    Ok(())
}

/// The upstream's body, or why it cannot be filtered (too large, cut off).
async fn read_limited(mut upstream: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = upstream
        .chunk()
        .await
        .map_err(|e| format!("the upstream's response was cut off: {e}"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!(
                "the upstream's response is larger than {limit} bytes (limits.max-response-body); response filters need all of it, so none of it is sent"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The header that tells a response filter which window of a stream it is judging.
pub const STREAM_HEADER: &str = "x-secflow-stream";

/// The response headers with the stream marker a filter sees: `window=N; final=0|1`.
fn with_window(headers: &[(String, String)], index: usize, last: bool) -> Vec<(String, String)> {
    let mut headers = headers.to_vec();
    headers.push((
        STREAM_HEADER.into(),
        format!("window={index}; final={}", u8::from(last)),
    ));
    headers
}

/// A filtered response as hyper's, with `body`; the stream marker, hop-by-hop headers and
/// the length (the body may have changed) left out.
fn to_hyper(response: &b::HttpResponse, body: Body) -> Response<Body> {
    let mut out = Response::new(body);
    *out.status_mut() = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) && !HOP_BY_HOP.contains(&name.as_str())
            && name != header::CONTENT_LENGTH
            && name.as_str() != STREAM_HEADER
        {
            headers.append(name, value);
        }
    }
    *out.headers_mut() = headers;
    out
}

/// An upstream stream cut into windows for the response filters.
struct Windows {
    upstream: reqwest::Response,
    /// Held back (filtered before, not released) and newly arrived bytes.
    pending: Vec<u8>,
    hold: usize,
    limit: usize,
    index: usize,
}

impl Windows {
    /// The next window: at least one new chunk, and more than `hold` bytes unless the
    /// stream ended (`true`).
    async fn next(&mut self) -> Result<(Vec<u8>, bool), String> {
        loop {
            match self
                .upstream
                .chunk()
                .await
                .map_err(|e| format!("the upstream's stream was cut off: {e}"))?
            {
                Some(chunk) => {
                    if self.pending.len() + chunk.len() > self.limit {
                        return Err(format!(
                            "a stream window grew past {} bytes (limits.max-response-body)",
                            self.limit
                        ));
                    }
                    self.pending.extend_from_slice(&chunk);
                    if self.pending.len() > self.hold {
                        return Ok((std::mem::take(&mut self.pending), false));
                    }
                }
                None => return Ok((std::mem::take(&mut self.pending), true)),
            }
        }
    }

    /// What of a filtered window goes to the client now; the rest is held back.
    fn release(&mut self, mut filtered: Vec<u8>, last: bool) -> Vec<u8> {
        self.index += 1;
        if last {
            return filtered;
        }
        let keep = filtered.len().min(self.hold);
        self.pending = filtered.split_off(filtered.len() - keep);
        filtered
    }
}

fn response_headers(upstream: &reqwest::header::HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in upstream {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An RFC 9457 problem answer.
fn problem(status: StatusCode, code: &str, detail: String, filter: Option<&str>) -> Response<Body> {
    let mut body = serde_json::json!({
        "type": format!("{TYPE_BASE}{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(filter) = filter {
        body["filter"] = filter.into();
    }
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}
