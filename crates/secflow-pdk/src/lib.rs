//! The SecFlow plugin development kit: write a plugin as an ordinary Rust type.
//!
//! Pick the trait of your plugin kind ([`Detector`], [`Enricher`], [`Analytics`],
//! [`ProxyFilter`], [`LogAnalyzer`], [`DynamicTester`] or [`Action`]), implement it together
//! with [`Plugin`] (init and health, both optional), and call the matching export macro once:
//!
//! ```ignore
//! use secflow_pdk::prelude::*;
//!
//! struct Upper;
//! impl Plugin for Upper {}
//! impl Action for Upper {
//!     fn actions() -> Vec<ActionInfo> { vec![action("upper", "Uppercases `text`", &[("text", "string", true)])] }
//!     fn execute(action: &str, params: Value) -> Result<Value, PluginError> {
//!         let text = params["text"].as_str().ok_or_else(|| invalid_input("`text` must be a string"))?;
//!         Ok(Value::from(text.to_uppercase()))
//!     }
//! }
//! secflow_pdk::export_action!(Upper);
//! ```
//!
//! Build with `secflow plugin build` (or `cargo build --release --target wasm32-wasip2`). The
//! WIT contract (`secflow:plugin@0.1.0`) stays behind this crate: authors never touch it.
//! Every instance is fresh per invocation, so state kept in statics lasts one call only; use
//! [`kv`] (with the `kv` capability) for anything that must persist.

#[doc(hidden)]
pub mod bindings;
pub mod http;

use std::cell::RefCell;

pub use serde_json::{self, Value, json};

pub use bindings::action::exports::secflow::plugin::action::{ActionInfo, ParamInfo};
use bindings::action::secflow::plugin::{host as host_api, kv as kv_api, types};
pub use bindings::analytics::exports::secflow::plugin::analytics::Report;
pub use bindings::detector::exports::secflow::plugin::detector::FileInput;
pub use bindings::dynamic_tester::exports::secflow::plugin::dynamic_tester::{
    AttackResult, Target,
};
pub use bindings::log_analyzer::exports::secflow::plugin::log_analyzer::LogEntry;
pub use bindings::proxy_filter::exports::secflow::plugin::proxy_filter::{
    Block, HttpRequest, HttpResponse, RequestVerdict, ResponseVerdict,
};
pub use types::{
    Confidence, Finding, Health, HealthStatus, Location, Metric, PluginError, Severity,
};

/// Everything a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::{
        Action, ActionInfo, Analytics, AttackResult, Block, Confidence, Detector, DynamicTester,
        Enricher, FileInput, Finding, Health, HealthStatus, HttpRequest, HttpResponse, Location,
        LogAnalyzer, LogEntry, Metric, Plugin, PluginError, ProxyFilter, Report, RequestVerdict,
        ResponseVerdict, Severity, Target, Value, action, config, failed, finding, invalid_config,
        invalid_input, json, log,
    };
}

thread_local! {
    static CONFIG: RefCell<Value> = RefCell::new(Value::Object(Default::default()));
}

/// The configuration passed to `init`, already validated by the host against the manifest's
/// `config-schema`.
pub fn config() -> Value {
    CONFIG.with(|c| c.borrow().clone())
}

/// Lifecycle hooks every kind has. Both have defaults.
pub trait Plugin {
    /// Called once per instance before anything else, with the validated configuration
    /// (also available later from [`config`]).
    fn init(_config: &Value) -> Result<(), PluginError> {
        Ok(())
    }

    /// Reports whether the plugin can work.
    fn health() -> Health {
        Health {
            status: HealthStatus::Healthy,
            message: String::new(),
        }
    }
}

/// Scans one file and reports findings.
pub trait Detector: Plugin {
    fn detect(file: FileInput) -> Result<Vec<Finding>, PluginError>;
}

/// Adds information to findings and returns them (it may also drop or add findings).
pub trait Enricher: Plugin {
    fn enrich(findings: Vec<Finding>) -> Result<Vec<Finding>, PluginError>;
}

/// Computes metrics and a markdown summary over all findings.
pub trait Analytics: Plugin {
    fn analyze(findings: Vec<Finding>) -> Result<Report, PluginError>;
}

/// Inspects proxied HTTP traffic.
pub trait ProxyFilter: Plugin {
    fn on_request(request: HttpRequest) -> Result<RequestVerdict, PluginError>;
    fn on_response(
        _request: HttpRequest,
        _response: HttpResponse,
    ) -> Result<ResponseVerdict, PluginError> {
        Ok(ResponseVerdict::Allow)
    }
}

/// Turns log entries into findings.
pub trait LogAnalyzer: Plugin {
    fn analyze_logs(source: String, entries: Vec<LogEntry>) -> Result<Vec<Finding>, PluginError>;
}

/// Probes a target and reports attack results.
pub trait DynamicTester: Plugin {
    fn run_tests(target: Target, config: Value) -> Result<Vec<AttackResult>, PluginError>;
}

/// Generic actions with JSON parameters and results.
pub trait Action: Plugin {
    fn actions() -> Vec<ActionInfo>;
    fn execute(action: &str, params: Value) -> Result<Value, PluginError>;
}

/// Builds an [`ActionInfo`] from `(name, type, required)` parameter triples.
pub fn action(name: &str, description: &str, params: &[(&str, &str, bool)]) -> ActionInfo {
    ActionInfo {
        name: name.to_string(),
        description: description.to_string(),
        params: params
            .iter()
            .map(|(n, t, r)| ParamInfo {
                name: n.to_string(),
                type_name: t.to_string(),
                description: String::new(),
                required: *r,
            })
            .collect(),
    }
}

/// A finding with the given rule, severity and message; fill in the rest with struct update.
pub fn finding(rule_id: &str, severity: Severity, title: &str, message: String) -> Finding {
    Finding {
        rule_id: rule_id.to_string(),
        title: title.to_string(),
        message,
        severity,
        confidence: Confidence::Medium,
        cwe_ids: Vec::new(),
        cve_ids: Vec::new(),
        cvss_vector: None,
        location: None,
        fingerprint: None,
        tags: Vec::new(),
        properties: Vec::new(),
    }
}

pub fn invalid_input(msg: impl Into<String>) -> PluginError {
    PluginError::InvalidInput(msg.into())
}

pub fn invalid_config(msg: impl Into<String>) -> PluginError {
    PluginError::InvalidConfig(msg.into())
}

pub fn failed(msg: impl Into<String>) -> PluginError {
    PluginError::Failed(msg.into())
}

/// Structured logging through the host (attributed to the plugin, bounded per invocation).
pub mod log {
    use super::host_api::{self, LogLevel};

    pub fn trace(msg: &str) {
        host_api::log(LogLevel::Trace, msg, &[]);
    }
    pub fn debug(msg: &str) {
        host_api::log(LogLevel::Debug, msg, &[]);
    }
    pub fn info(msg: &str) {
        host_api::log(LogLevel::Info, msg, &[]);
    }
    pub fn warn(msg: &str) {
        host_api::log(LogLevel::Warn, msg, &[]);
    }
    pub fn error(msg: &str) {
        host_api::log(LogLevel::Error, msg, &[]);
    }
    /// A log line with key/value fields.
    pub fn with_fields(level: LogLevel, msg: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        host_api::log(level, msg, &fields);
    }
    pub use super::host_api::LogLevel as Level;
}

/// One configuration value by key, as JSON.
pub fn config_get(key: &str) -> Option<Value> {
    host_api::config_get(key).and_then(|s| serde_json::from_str(&s).ok())
}

/// Records a metric sample (the host adds the plugin id).
pub fn emit_metric(name: &str, value: f64, labels: &[(&str, &str)]) {
    let labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    host_api::emit_metric(name, value, &labels);
}

/// The plugin's private key-value store. Needs `[capabilities.kv]` in the manifest; a plugin
/// that calls these without it is refused at load.
pub mod kv {
    use super::kv_api as api;
    pub use super::kv_api::KvError;

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        api::get(key)
    }
    pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
        api::set(key, value)
    }
    pub fn delete(key: &str) -> Result<(), KvError> {
        api::delete(key)
    }
    pub fn list_keys(prefix: &str) -> Result<Vec<String>, KvError> {
        api::list_keys(prefix)
    }
}

#[doc(hidden)]
pub mod adapter {
    //! Glue between the generated `Guest` traits and the author-facing traits.
    use super::*;
    use crate::bindings as b;
    use std::marker::PhantomData;

    pub struct Adapter<T>(PhantomData<T>);

    fn init<T: Plugin>(config: String) -> Result<(), PluginError> {
        let value: Value = serde_json::from_str(&config)
            .map_err(|e| PluginError::InvalidConfig(format!("config is not JSON: {e}")))?;
        CONFIG.with(|c| *c.borrow_mut() = value.clone());
        T::init(&value)
    }

    macro_rules! lifecycle {
        ($world:ident, $bound:ident) => {
            impl<T: $bound> b::$world::Guest for Adapter<T> {
                fn init(config: String) -> Result<(), PluginError> {
                    init::<T>(config)
                }
                fn health() -> Health {
                    T::health()
                }
            }
        };
    }
    lifecycle!(action, Action);
    lifecycle!(detector, Detector);
    lifecycle!(enricher, Enricher);
    lifecycle!(analytics, Analytics);
    lifecycle!(proxy_filter, ProxyFilter);
    lifecycle!(log_analyzer, LogAnalyzer);
    lifecycle!(dynamic_tester, DynamicTester);

    impl<T: Action> b::action::exports::secflow::plugin::action::Guest for Adapter<T> {
        fn actions() -> Vec<ActionInfo> {
            T::actions()
        }
        fn execute(action: String, params: String) -> Result<String, PluginError> {
            let params: Value = if params.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&params)
                    .map_err(|e| PluginError::InvalidInput(format!("params are not JSON: {e}")))?
            };
            let out = T::execute(&action, params)?;
            serde_json::to_string(&out).map_err(|e| PluginError::Failed(e.to_string()))
        }
    }

    impl<T: Detector> b::detector::exports::secflow::plugin::detector::Guest for Adapter<T> {
        fn detect(file: FileInput) -> Result<Vec<Finding>, PluginError> {
            T::detect(file)
        }
    }

    impl<T: Enricher> b::enricher::exports::secflow::plugin::enricher::Guest for Adapter<T> {
        fn enrich(findings: Vec<Finding>) -> Result<Vec<Finding>, PluginError> {
            T::enrich(findings)
        }
    }

    impl<T: Analytics> b::analytics::exports::secflow::plugin::analytics::Guest for Adapter<T> {
        fn analyze(findings: Vec<Finding>) -> Result<Report, PluginError> {
            T::analyze(findings)
        }
    }

    impl<T: ProxyFilter> b::proxy_filter::exports::secflow::plugin::proxy_filter::Guest for Adapter<T> {
        fn on_request(request: HttpRequest) -> Result<RequestVerdict, PluginError> {
            T::on_request(request)
        }
        fn on_response(
            request: HttpRequest,
            response: HttpResponse,
        ) -> Result<ResponseVerdict, PluginError> {
            T::on_response(request, response)
        }
    }

    impl<T: LogAnalyzer> b::log_analyzer::exports::secflow::plugin::log_analyzer::Guest for Adapter<T> {
        fn analyze_logs(
            source: String,
            entries: Vec<LogEntry>,
        ) -> Result<Vec<Finding>, PluginError> {
            T::analyze_logs(source, entries)
        }
    }

    impl<T: DynamicTester> b::dynamic_tester::exports::secflow::plugin::dynamic_tester::Guest
        for Adapter<T>
    {
        fn run_tests(target: Target, config: String) -> Result<Vec<AttackResult>, PluginError> {
            let config: Value = if config.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&config)
                    .map_err(|e| PluginError::InvalidConfig(format!("config is not JSON: {e}")))?
            };
            T::run_tests(target, config)
        }
    }
}

macro_rules! define_export {
    ($(#[$doc:meta])* $name:ident, $world:ident, $inner:ident) => {
        $(#[$doc])*
        #[macro_export]
        macro_rules! $name {
            ($t:ty) => {
                // Only components export: a native build (the plugin's unit tests) has no
                // component model, and native linkers reject the `:` in export names.
                #[cfg(target_arch = "wasm32")]
                const _: () = {
                    type __SecflowPluginImpl = $crate::adapter::Adapter<$t>;
                    $crate::bindings::$world::$inner!(__SecflowPluginImpl with_types_in $crate::bindings::$world);
                };
            };
        }
    };
}

define_export!(
    /// Exports a [`Detector`] as the plugin component. Call once per crate.
    export_detector, detector, __export_detector_world
);
define_export!(
    /// Exports an [`Enricher`] as the plugin component. Call once per crate.
    export_enricher, enricher, __export_enricher_world
);
define_export!(
    /// Exports an [`Analytics`] plugin as the plugin component. Call once per crate.
    export_analytics, analytics, __export_analytics_world
);
define_export!(
    /// Exports a [`ProxyFilter`] as the plugin component. Call once per crate.
    export_proxy_filter, proxy_filter, __export_proxy_filter_world
);
define_export!(
    /// Exports a [`LogAnalyzer`] as the plugin component. Call once per crate.
    export_log_analyzer, log_analyzer, __export_log_analyzer_world
);
define_export!(
    /// Exports a [`DynamicTester`] as the plugin component. Call once per crate.
    export_dynamic_tester, dynamic_tester, __export_dynamic_tester_world
);
define_export!(
    /// Exports an [`Action`] plugin as the plugin component. Call once per crate.
    export_action, action, __export_action_world
);
