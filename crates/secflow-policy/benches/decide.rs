//! One policy decision with the default policies: the cost the registry pays before every
//! install, upgrade, enable and run. Target: at most 20 µs median.
//!
//! ```sh
//! cargo bench -p secflow-policy --bench decide -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use secflow_policy::{
    Action, CapabilityFacts, LimitFacts, PluginFacts, PolicyEngine, PolicyRequest,
};
use std::hint::black_box;

fn request(action: Action) -> PolicyRequest {
    PolicyRequest {
        principal: "alice".to_string(),
        roles: vec!["operator".to_string()],
        action,
        plugin: PluginFacts {
            id: "secrets-detector".to_string(),
            version: "1.4.0".to_string(),
            kind: "detector".to_string(),
            signed: true,
            signer_roles: vec!["marketplace".to_string(), "publisher".to_string()],
            capabilities: CapabilityFacts {
                network: 1,
                network_private: false,
                filesystem: 1,
                filesystem_write: false,
                kv: true,
            },
            limits: LimitFacts {
                memory_mib: 64,
                timeout_ms: 5_000,
                fuel: 0,
                output_kib: 1024,
                kv_kib: 0,
                write_mib: 0,
                write_files: 0,
            },
            violations: 0,
            quarantined: false,
        },
        dev: false,
        approved: true,
        capability_increase: false,
        from_marketplace: false,
    }
}

fn bench(c: &mut Criterion) {
    let engine = PolicyEngine::defaults();
    let allowed = request(Action::Run);
    assert!(engine.decide(&allowed).allowed);
    c.bench_function("decide/run-allowed", |b| {
        b.iter(|| engine.decide(black_box(&allowed)))
    });
    let mut denied = request(Action::Install);
    denied.plugin.signed = false;
    denied.plugin.capabilities.network_private = true;
    assert!(!engine.decide(&denied).allowed);
    c.bench_function("decide/install-denied", |b| {
        b.iter(|| engine.decide(black_box(&denied)))
    });
    c.bench_function("load/defaults", |b| b.iter(PolicyEngine::defaults));
}

criterion_group!(benches, bench);
criterion_main!(benches);
