//! `proxy.toml`: where the proxy listens, its limits, and its routes with their filter
//! chains. Unknown keys are errors (a misspelt `failure` must not silently mean closed,
//! nor a misspelt route silently pass traffic unfiltered).

use secflow_host::{FailureMode, FilterMode};
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProxyConfig {
    /// Where clients connect [default: 127.0.0.1:8081].
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the admin endpoints listen (`/metrics`, `/admin/filters`, `/livez`); a
    /// separate bind, so they are never reachable through the proxied routes. None when
    /// unset.
    pub admin: Option<SocketAddr>,
    /// Serve clients over TLS with this certificate and key.
    pub tls: Option<Tls>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// TLS termination: PEM files, read at start and at every reload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tls {
    /// The certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Largest request body read (and given to filters); larger is 413.
    #[serde(default = "default_request_body")]
    pub max_request_body: usize,
    /// Largest response body buffered for response filters; larger fails the route's
    /// response filters (closed: 502).
    #[serde(default = "default_response_body")]
    pub max_response_body: usize,
    /// Most concurrent client connections.
    #[serde(default = "default_connections")]
    pub max_connections: usize,
    /// How long a client may take to send its request head (slower is cut off).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// How long a client may take to send its request body once the head arrived (slower
    /// is 408): a client trickling a body cannot hold a connection and a buffer forever.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_body: default_request_body(),
            max_response_body: default_response_body(),
            max_connections: default_connections(),
            header_timeout_ms: default_header_timeout(),
            body_timeout_ms: default_body_timeout(),
        }
    }
}

fn default_request_body() -> usize {
    1 << 20
}
fn default_response_body() -> usize {
    8 << 20
}
fn default_connections() -> usize {
    10_000
}
fn default_header_timeout() -> u64 {
    10_000
}
fn default_body_timeout() -> u64 {
    30_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteConfig {
    /// Named in audit events and errors.
    pub name: String,
    /// Only requests for this host (the `Host` header without its port); any when unset.
    pub host: Option<String>,
    /// Only paths starting with this; the longest matching prefix wins [default: /].
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// `http://` or `https://` base URL the request path is appended to. HTTPS upstreams are
    /// verified against the web PKI roots.
    pub upstream: String,
    /// How long the upstream may take to answer (504 after) [default: 30 000 ms].
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// In a streamed response (server-sent events, chunked), the bytes held back until
    /// more arrives: a secret or pattern up to this long, split anywhere across chunks, is
    /// seen whole by the response filters before any of it is released [default: 256].
    #[serde(default = "default_hold_back")]
    pub stream_hold_back: usize,
    #[serde(default, rename = "filter")]
    pub filters: Vec<FilterConfig>,
}

fn default_hold_back() -> usize {
    256
}

fn default_prefix() -> String {
    "/".into()
}
fn default_timeout() -> u64 {
    30_000
}

/// Which side of the exchange a filter sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Request,
    Response,
}

impl Phase {
    /// As audit events and messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Response => "response",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FilterConfig {
    /// An installed, enabled proxy-filter plugin's id.
    pub plugin: String,
    /// [default: both]
    #[serde(default = "both")]
    pub phases: Vec<Phase>,
    /// [default: closed]
    #[serde(default = "closed")]
    pub failure: FailureMode,
    /// [default: enforce]
    #[serde(default = "enforce")]
    pub mode: FilterMode,
    /// Needed to let a security filter fail open.
    #[serde(default)]
    pub insecure_fail_open: bool,
    /// A deadline per call, tighter than the manifest's `limits.timeout-ms` (a larger
    /// value is the manifest's).
    pub timeout_ms: Option<u64>,
    /// A fuel budget per call, tighter than the manifest's `limits.fuel`; needs a plugin
    /// whose manifest meters fuel.
    pub fuel: Option<u64>,
    /// The plugin's configuration (checked against its manifest's schema).
    #[serde(default)]
    pub config: Option<toml::Table>,
}

fn both() -> Vec<Phase> {
    vec![Phase::Request, Phase::Response]
}
fn closed() -> FailureMode {
    FailureMode::Closed
}
fn enforce() -> FilterMode {
    FilterMode::Enforce
}

impl ProxyConfig {
    /// Parses and checks `proxy.toml` (everything that does not need the host).
    pub fn parse(text: &str) -> anyhow::Result<ProxyConfig> {
        let config: ProxyConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("proxy config: {e}"))?;
        if config.routes.is_empty() {
            anyhow::bail!("proxy config: no [[route]]; add one with a name and an upstream");
        }
        if config.limits.header_timeout_ms == 0 || config.limits.body_timeout_ms == 0 {
            anyhow::bail!(
                "proxy config: limits.header-timeout-ms and limits.body-timeout-ms must be at least 1"
            );
        }
        if config.admin.is_some_and(|admin| admin == config.listen) {
            anyhow::bail!(
                "proxy config: admin and listen are both {}; give the admin endpoints their own address",
                config.listen
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for route in &config.routes {
            if !names.insert(route.name.as_str()) {
                anyhow::bail!("proxy config: two routes are named `{}`", route.name);
            }
            if !route.path_prefix.starts_with('/') {
                anyhow::bail!(
                    "route {}: path-prefix `{}` must start with /",
                    route.name,
                    route.path_prefix
                );
            }
            let url = reqwest::Url::parse(&route.upstream).map_err(|e| {
                anyhow::anyhow!("route {}: upstream `{}`: {e}", route.name, route.upstream)
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                anyhow::bail!(
                    "route {}: upstream `{}` must be an http:// or https:// URL with a host",
                    route.name,
                    route.upstream
                );
            }
            if url.query().is_some() || url.fragment().is_some() {
                anyhow::bail!(
                    "route {}: upstream `{}` must not have a query or fragment",
                    route.name,
                    route.upstream
                );
            }
            if route.timeout_ms == 0 {
                anyhow::bail!("route {}: timeout-ms must be at least 1", route.name);
            }
            for filter in &route.filters {
                if filter.timeout_ms == Some(0) || filter.fuel == Some(0) {
                    anyhow::bail!(
                        "route {}: filter {}: timeout-ms and fuel must be at least 1",
                        route.name,
                        filter.plugin
                    );
                }
                if filter.phases.is_empty() {
                    anyhow::bail!(
                        "route {}: filter {} has no phases; say request, response or both",
                        route.name,
                        filter.plugin
                    );
                }
            }
        }
        Ok(config)
    }
}
