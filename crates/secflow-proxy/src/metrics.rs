//! The proxy's metrics: `/metrics` on the admin bind (Prometheus text) and the per-filter
//! counters of `/admin/filters` (JSON). They outlive reloads: a counter keeps counting
//! when the configuration around it changes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FilterLabels {
    route: String,
    filter: String,
    phase: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    filter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// One filter's counts on one route and side, for `/admin/filters`.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct FilterCounts {
    pub calls: u64,
    /// By outcome: `allow`, `block`, `modify`, `shadow-block`, `shadow-modify`, `error`,
    /// `timeout`, `refused`, `invalid-verdict`.
    pub outcomes: BTreeMap<String, u64>,
    /// Time in the filter (clearance and the sandboxed call), in microseconds.
    pub total_us: u64,
    pub max_us: u64,
}

/// The route, filter and side a count is about.
pub type FilterKey = (String, String, &'static str);

/// The proxy's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    filter_calls: Family<FilterLabels, Counter>,
    filter_duration: Family<PluginLabels, Histogram, fn() -> Histogram>,
    streams_cut: Counter,
    reloads: Family<OutcomeLabels, Counter>,
    generation: Gauge,
    counts: Arc<Mutex<BTreeMap<FilterKey, FilterCounts>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn request_histogram() -> Histogram {
    // 50 µs to ~6.5 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 18))
}

fn filter_histogram() -> Histogram {
    // 10 µs to ~5 s: a header-only filter takes tens of microseconds.
    Histogram::new(exponential_buckets(0.00001, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("secflow_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                request_histogram as fn() -> Histogram,
            );
        let filter_calls = Family::<FilterLabels, Counter>::default();
        let filter_duration =
            Family::<PluginLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                filter_histogram as fn() -> Histogram,
            );
        let streams_cut = Counter::default();
        let reloads = Family::<OutcomeLabels, Counter>::default();
        let generation = Gauge::default();
        registry.register(
            "requests",
            "Requests answered, by route (`-` when none matched) and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the response head, by route",
            request_duration.clone(),
        );
        registry.register(
            "filter_calls",
            "Filter calls by route, filter, phase and outcome",
            filter_calls.clone(),
        );
        registry.register(
            "filter_duration_seconds",
            "Time in a filter (clearance and the sandboxed call), by filter",
            filter_duration.clone(),
        );
        registry.register(
            "streams_cut",
            "Streamed responses stopped part-way by a response filter or an upstream failure",
            streams_cut.clone(),
        );
        registry.register(
            "reloads",
            "Configuration reloads, applied or refused",
            reloads.clone(),
        );
        registry.register(
            "config_generation",
            "The configuration in force: 1 at start, one more at each applied reload",
            generation.clone(),
        );
        generation.set(1);
        Metrics {
            registry: Arc::new(registry),
            requests,
            request_duration,
            filter_calls,
            filter_duration,
            streams_cut,
            reloads,
            generation,
            counts: Arc::default(),
        }
    }

    pub fn request(&self, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn filter_call(
        &self,
        route: &str,
        filter: &str,
        phase: &'static str,
        outcome: &str,
        took: Duration,
    ) {
        self.filter_calls
            .get_or_create(&FilterLabels {
                route: route.to_string(),
                filter: filter.to_string(),
                phase: phase.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.filter_duration
            .get_or_create(&PluginLabels {
                filter: filter.to_string(),
            })
            .observe(took.as_secs_f64());
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let entry = counts
            .entry((route.to_string(), filter.to_string(), phase))
            .or_default();
        entry.calls += 1;
        *entry.outcomes.entry(outcome.to_string()).or_default() += 1;
        entry.total_us = entry.total_us.saturating_add(us);
        entry.max_us = entry.max_us.max(us);
    }

    pub fn stream_cut(&self) {
        self.streams_cut.inc();
    }

    pub fn reloaded(&self, applied: bool, generation: u64) {
        self.reloads
            .get_or_create(&OutcomeLabels {
                outcome: if applied { "applied" } else { "refused" }.into(),
            })
            .inc();
        if applied {
            self.generation
                .set(i64::try_from(generation).unwrap_or(i64::MAX));
        }
    }

    /// The counts of one filter on one route and side (zero when it never ran).
    pub fn counts(&self, route: &str, filter: &str, phase: &'static str) -> FilterCounts {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(route.to_string(), filter.to_string(), phase))
            .cloned()
            .unwrap_or_default()
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
