//! The load generator of SecFlow's load benchmarks (`secflow serve`, `secflow proxy`).
//!
//! Closed loop: each of N clients holds one keep-alive connection and sends its next
//! request when the previous answer is read, for S seconds. Latencies go into a fixed-size
//! histogram, not a growing list, so the generator's own memory does not show as the
//! server's RSS growing when both run in one process; the process's RSS is sampled every
//! 250 ms over the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One request, sent again and again.
#[derive(Debug, Clone)]
pub struct Load {
    pub url: String,
    /// `POST` with this content type and body; `GET` when unset.
    pub body: Option<(&'static str, String)>,
    /// Extra headers on every request.
    pub headers: Vec<(&'static str, String)>,
    pub connections: usize,
    pub seconds: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub requests: u64,
    /// Answers that were not 2xx, and transport failures.
    pub errors: u64,
    pub seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub rss_start: u64,
    pub rss_end: u64,
    pub rss_peak: u64,
    /// RSS (KiB) sampled every second of the run.
    pub rss_series: Vec<u64>,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// How much the RSS peak of the second half of the run rose above the first half's
    /// (MiB): about zero when memory stays flat.
    pub fn rss_growth_mib(&self) -> f64 {
        let half = self.rss_series.len() / 2;
        let peak = |s: &[u64]| s.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
        peak(&self.rss_series[half..]) - peak(&self.rss_series[..half])
    }
}

/// The resident set size of this process, in KiB (0 where `/proc` is missing).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The CPU model, for the figures' context.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Latencies in microseconds, 1 µs to 60 s, three significant digits.
fn latency_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// An integer setting from the environment, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs the load (inside a Tokio runtime).
pub async fn run(load: Load) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(rss_kib()));
    let rss_start = rss_kib();
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            let mut series = Vec::new();
            let mut tick = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let rss = rss_kib();
                peak.fetch_max(rss, Ordering::Relaxed);
                if tick.is_multiple_of(4) {
                    series.push(rss);
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            series
        })
    };
    let load = Arc::new(load);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..load.connections {
        let (load, stop, errors) = (load.clone(), stop.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("an HTTP client");
            let mut latencies = latency_histogram();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let mut request = match &load.body {
                    Some((content_type, text)) => client
                        .post(&load.url)
                        .header("content-type", *content_type)
                        .body(text.clone()),
                    None => client.get(&load.url),
                };
                for (name, value) in &load.headers {
                    request = request.header(*name, value);
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.saturating_record(t.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(load.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = latency_histogram();
    for t in tasks {
        all.add(t.await.expect("a load task"))
            .expect("histograms of the same bounds");
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_series = sampler.await.expect("the RSS sampler");
    Outcome {
        requests: all.len(),
        errors: errors.load(Ordering::Relaxed),
        seconds,
        p50_us: all.value_at_quantile(0.50),
        p99_us: all.value_at_quantile(0.99),
        rss_start,
        rss_end: rss_kib(),
        rss_peak: peak.load(Ordering::Relaxed),
        rss_series,
    }
}
