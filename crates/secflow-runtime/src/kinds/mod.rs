//! A plugin kind in one room: each kind's file holds what the runtime knows about it (the
//! bindings it is pre-linked with, the calls it answers, how a call reaches its exports).
//! What the pipeline needs to know about a kind (`runs_in_scan`) is on
//! [`secflow_manifest::PluginKind`]; `docs/adding-a-kind.md` lists every place a new kind
//! touches.

use crate::bindings as b;
use crate::host::HostState;
use crate::invoke::{Call, CallResult};
use secflow_manifest::PluginKind;
use wasmtime::Store;
use wasmtime::component::InstancePre;

/// Runs the plugin's `init` with its configuration; a refusal is the call's outcome.
macro_rules! init_or_return {
    ($bindings:expr, $store:expr, $config:expr) => {
        if let Err(e) = $bindings.call_init(&mut *$store, $config).await? {
            return Ok(Err(crate::invoke::plugin_err(e)));
        }
    };
}

/// Answers [`Call::Health`], which every kind exports.
macro_rules! health_or_continue {
    ($bindings:expr, $store:expr, $call:expr) => {
        if let Call::Health = $call {
            return Ok(Ok(crate::invoke::Output::Health(
                $bindings.call_health(&mut *$store).await?,
            )));
        }
    };
}

mod action;
mod analytics;
mod detector;
mod dynamic_tester;
mod enricher;
mod log_analyzer;
mod proxy_filter;

pub(crate) use detector::detect_each;

/// A component pre-linked with its kind's bindings.
pub(crate) enum KindPre {
    Detector(b::detector::DetectorPluginPre<HostState>),
    Enricher(b::enricher::EnricherPluginPre<HostState>),
    Analytics(b::analytics::AnalyticsPluginPre<HostState>),
    ProxyFilter(b::proxy_filter::ProxyFilterPluginPre<HostState>),
    LogAnalyzer(b::log_analyzer::LogAnalyzerPluginPre<HostState>),
    DynamicTester(b::dynamic_tester::DynamicTesterPluginPre<HostState>),
    Action(b::action::ActionPluginPre<HostState>),
}

impl KindPre {
    /// Pre-links `instance` with the bindings of `kind`; fails when the component does not
    /// export that kind's world.
    pub(crate) fn new(
        kind: PluginKind,
        instance: InstancePre<HostState>,
    ) -> wasmtime::Result<KindPre> {
        Ok(match kind {
            PluginKind::Detector => KindPre::Detector(detector::pre(instance)?),
            PluginKind::Enricher => KindPre::Enricher(enricher::pre(instance)?),
            PluginKind::Analytics => KindPre::Analytics(analytics::pre(instance)?),
            PluginKind::ProxyFilter => KindPre::ProxyFilter(proxy_filter::pre(instance)?),
            PluginKind::LogAnalyzer => KindPre::LogAnalyzer(log_analyzer::pre(instance)?),
            PluginKind::DynamicTester => KindPre::DynamicTester(dynamic_tester::pre(instance)?),
            PluginKind::Action => KindPre::Action(action::pre(instance)?),
        })
    }
}

/// Whether a plugin of `kind` answers `call` (every kind answers `Health`).
pub(crate) fn supports(kind: PluginKind, call: &Call) -> bool {
    matches!(call, Call::Health)
        || match kind {
            PluginKind::Detector => detector::supports(call),
            PluginKind::Enricher => enricher::supports(call),
            PluginKind::Analytics => analytics::supports(call),
            PluginKind::ProxyFilter => proxy_filter::supports(call),
            PluginKind::LogAnalyzer => log_analyzer::supports(call),
            PluginKind::DynamicTester => dynamic_tester::supports(call),
            PluginKind::Action => action::supports(call),
        }
}

/// Instantiates the plugin, runs its `init` with `config`, then `call` (checked with
/// [`supports`] before).
pub(crate) async fn run(
    pre: &KindPre,
    store: &mut Store<HostState>,
    config: &str,
    call: Call,
    output_limit: u64,
) -> CallResult {
    match pre {
        KindPre::Action(pre) => action::run(pre, store, config, call, output_limit).await,
        KindPre::Detector(pre) => detector::run(pre, store, config, call, output_limit).await,
        KindPre::Enricher(pre) => enricher::run(pre, store, config, call).await,
        KindPre::Analytics(pre) => analytics::run(pre, store, config, call).await,
        KindPre::ProxyFilter(pre) => proxy_filter::run(pre, store, config, call).await,
        KindPre::LogAnalyzer(pre) => log_analyzer::run(pre, store, config, call).await,
        KindPre::DynamicTester(pre) => dynamic_tester::run(pre, store, config, call).await,
    }
}
