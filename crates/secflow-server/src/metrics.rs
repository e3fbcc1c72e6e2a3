//! `/metrics` in the Prometheus text format: HTTP requests by route and status with their
//! durations, plugin invocations and their durations, denials by kind, quarantines, scans
//! by outcome, and the scan queue's depth.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvokeLabels {
    plugin: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

fn duration_histogram() -> Histogram {
    // 100 µs to ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The server's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    invocations: Family<InvokeLabels, Counter>,
    invocation_duration: Histogram,
    denials: Family<KindLabels, Counter>,
    quarantines: Counter,
    scans: Family<KindLabels, Counter>,
    queue_depth: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("secflow");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        let invocations = Family::<InvokeLabels, Counter>::default();
        let invocation_duration = duration_histogram();
        let denials = Family::<KindLabels, Counter>::default();
        let quarantines = Counter::default();
        let scans = Family::<KindLabels, Counter>::default();
        let queue_depth = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request durations by route",
            http_duration.clone(),
        );
        registry.register(
            "plugin_invocations",
            "Plugin runs by plugin and outcome",
            invocations.clone(),
        );
        registry.register(
            "plugin_invocation_duration_seconds",
            "Plugin run durations (load and call)",
            invocation_duration.clone(),
        );
        registry.register(
            "denials",
            "Refusals by kind: unauthenticated, policy, rate-limit, busy, sandbox",
            denials.clone(),
        );
        registry.register(
            "quarantines",
            "Plugins put into quarantine",
            quarantines.clone(),
        );
        registry.register("scans", "Scan jobs finished, by outcome", scans.clone());
        registry.register(
            "scan_queue_depth",
            "Scan jobs queued or running",
            queue_depth.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            http_requests,
            http_duration,
            invocations,
            invocation_duration,
            denials,
            quarantines,
            scans,
            queue_depth,
        }
    }

    pub fn http(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    pub fn invocation(&self, plugin: &str, outcome: &str, seconds: f64) {
        self.invocations
            .get_or_create(&InvokeLabels {
                plugin: plugin.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.invocation_duration.observe(seconds);
    }

    pub fn denied(&self, kind: &str) {
        self.denials
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn quarantined(&self) {
        self.quarantines.inc();
    }

    pub fn scan_finished(&self, outcome: &str) {
        self.scans
            .get_or_create(&KindLabels {
                kind: outcome.to_string(),
            })
            .inc();
    }

    pub fn set_queue_depth(&self, depth: i64) {
        self.queue_depth.set(depth);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
