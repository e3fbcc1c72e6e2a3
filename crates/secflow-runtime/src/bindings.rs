//! Host bindings generated from `wit/secflow-plugin.wit`, one module per plugin world.
//!
//! The `action` module owns the shared interfaces (`types`, `host`, `kv`); the other worlds
//! reuse them through `with`, so the host implements `host` and `kv` once and every kind
//! shares one `Finding` type. Exports are async because plugins with a network grant call
//! `wasi:http`, which needs an async store; host imports are synchronous and trappable so a
//! plugin that floods the log can be stopped.

pub mod action {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "action-plugin",
        imports: { default: trappable },
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

macro_rules! world_module {
    ($module:ident, $world:literal) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $world,
                imports: { default: trappable },
                exports: { default: async },
                additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
                with: {
                    "secflow:plugin/types": crate::bindings::action::secflow::plugin::types,
                    "secflow:plugin/host": crate::bindings::action::secflow::plugin::host,
                    "secflow:plugin/kv": crate::bindings::action::secflow::plugin::kv,
                },
            });
        }
    };
}

world_module!(detector, "detector-plugin");
world_module!(enricher, "enricher-plugin");
world_module!(analytics, "analytics-plugin");
world_module!(proxy_filter, "proxy-filter-plugin");
world_module!(log_analyzer, "log-analyzer-plugin");
world_module!(dynamic_tester, "dynamic-tester-plugin");

pub use action::exports::secflow::plugin::action::{ActionInfo, ParamInfo};
pub use action::secflow::plugin::host::LogLevel;
pub use action::secflow::plugin::kv::KvError;
pub use action::secflow::plugin::types::{
    Confidence, Finding, Health, HealthStatus, Location, Metric, PluginError, Severity,
};
pub use analytics::exports::secflow::plugin::analytics::Report;
pub use detector::exports::secflow::plugin::detector::FileInput;
pub use dynamic_tester::exports::secflow::plugin::dynamic_tester::{AttackResult, Target};
pub use log_analyzer::exports::secflow::plugin::log_analyzer::LogEntry;
pub use proxy_filter::exports::secflow::plugin::proxy_filter::{
    Block, HttpRequest, HttpResponse, RequestVerdict, ResponseVerdict,
};
