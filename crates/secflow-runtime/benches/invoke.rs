//! Cost of one sandboxed invocation, with baselines measured in the same run.
//!
//! `cargo bench -p secflow-runtime --bench invoke`. Figures go to BENCHMARKS.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use secflow_manifest::{Format, Limits, Manifest};
use secflow_plugin_artifacts as artifacts;
use secflow_runtime::{Call, Grants, Plugin, Runtime, RuntimeConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("secflow-bench-cache")
}

fn runtime(pooling: bool) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        cache_key: Some(secflow_runtime::CacheKey([7; 32])),
        pooling,
        ..Default::default()
    })
    .unwrap()
}

fn load(rt: &Runtime, artifact: artifacts::Artifact, limits: impl FnOnce(&mut Limits)) -> Plugin {
    let text = std::fs::read_to_string(PathBuf::from(artifact.dir).join("plugin.toml")).unwrap();
    let mut m = Manifest::parse(text.as_bytes(), Format::Toml, "bench").unwrap();
    limits(&mut m.limits);
    let grants = Grants::all_declared(&m, &[]).expect("no mounts");
    rt.load(m, &artifact.bytes(), grants).unwrap()
}

fn exec(action: &str, params: String) -> Call {
    Call::Execute {
        action: action.into(),
        params,
    }
}

fn fresh_instance(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = serde_json::json!({});
    let mut group = c.benchmark_group("fresh_instance_noop");
    for (name, pooling) in [
        ("secflow_pooled", true),
        ("baseline_on_demand_alloc", false),
    ] {
        let rt = runtime(pooling);
        let p = load(&rt, artifacts::TEST_NOOP, |_| {});
        group.bench_function(name, |b| {
            b.iter(|| {
                let inv = tokio.block_on(rt.invoke(&p, exec("echo", "{}".into()), &config));
                assert!(inv.outcome.is_ok());
            })
        });
    }
    group.finish();
}

fn data_processor(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = runtime(true);
    let p = load(&rt, artifacts::DATA_PROCESSOR, |l| {
        l.memory_mib = Some(256);
        l.output_kib = Some(16384);
        l.timeout_ms = Some(60_000);
    });
    let config = serde_json::json!({});
    let mut group = c.benchmark_group("data_processor_transform");
    for size in [1usize << 10, 1 << 20] {
        // Numbers of about 8 bytes each in JSON, to reach the input size.
        let data: Vec<u64> = (0..size / 8).map(|i| 1_000_000 + i as u64).collect();
        let params =
            serde_json::json!({"data": data, "operation": "multiply", "factor": 2}).to_string();
        group.throughput(Throughput::Bytes(params.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{}KiB", size >> 10)),
            &params,
            |b, params| {
                b.iter(|| {
                    let inv =
                        tokio.block_on(rt.invoke(&p, exec("transform", params.clone()), &config));
                    assert!(inv.outcome.is_ok(), "{:?}", inv.outcome);
                })
            },
        );
    }
    group.finish();
}

/// Invocations spread over 1 worker, then over every core, in the same run: the ratio is
/// how well fresh instances scale (a kernel-bound teardown would serialize them).
fn all_cores(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = runtime(true);
    let p = Arc::new(load(&rt, artifacts::TEST_NOOP, |_| {}));
    let mut group = c.benchmark_group("all_cores_noop");
    group.throughput(Throughput::Elements(1));
    let mut counts = vec![1, cores];
    counts.dedup(); // one core: a single case
    for workers in counts {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        group.bench_function(format!("{workers}_workers"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                tokio.block_on(async {
                    let per = iters.div_ceil(workers as u64);
                    let tasks: Vec<_> = (0..workers)
                        .map(|_| {
                            let (rt, p) = (rt.clone(), p.clone());
                            tokio::spawn(async move {
                                let config = serde_json::json!({});
                                for _ in 0..per {
                                    let inv =
                                        rt.invoke(&p, exec("echo", "{}".into()), &config).await;
                                    assert!(inv.outcome.is_ok());
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn epoch_vs_fuel(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = runtime(true);
    let plain = load(&rt, artifacts::TEST_NOOP, |_| {});
    let metered = load(&rt, artifacts::TEST_NOOP, |l| {
        l.fuel = Some(1_000_000_000_000)
    });
    let config = serde_json::json!({});
    let mut group = c.benchmark_group("cpu_bound_10M_rounds");
    group.measurement_time(Duration::from_secs(8));
    for (name, p) in [("epoch_only", &plain), ("epoch_and_fuel", &metered)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let inv =
                    tokio.block_on(rt.invoke(p, exec("work", r#"{"n":10000000}"#.into()), &config));
                assert!(inv.outcome.is_ok(), "{:?}", inv.outcome);
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    fresh_instance,
    data_processor,
    all_cores,
    epoch_vs_fuel
);
criterion_main!(benches);
