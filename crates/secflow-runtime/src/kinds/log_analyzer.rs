//! `log-analyzer`: turns log entries into findings.

use crate::bindings as b;
use crate::host::HostState;
use crate::invoke::{Call, CallResult, Output, plugin_err};
use wasmtime::Store;
use wasmtime::component::InstancePre;

pub(super) fn pre(
    instance: InstancePre<HostState>,
) -> wasmtime::Result<b::log_analyzer::LogAnalyzerPluginPre<HostState>> {
    b::log_analyzer::LogAnalyzerPluginPre::new(instance)
}

pub(super) fn supports(call: &Call) -> bool {
    matches!(call, Call::AnalyzeLogs { .. })
}

pub(super) async fn run(
    pre: &b::log_analyzer::LogAnalyzerPluginPre<HostState>,
    store: &mut Store<HostState>,
    config: &str,
    call: Call,
) -> CallResult {
    let p = pre.instantiate_async(&mut *store).await?;
    init_or_return!(p, store, config);
    health_or_continue!(p, store, call);
    let Call::AnalyzeLogs { source, entries } = call else {
        unreachable!("checked by supports()")
    };
    Ok(p.secflow_plugin_log_analyzer()
        .call_analyze_logs(&mut *store, &source, &entries)
        .await?
        .map(Output::Findings)
        .map_err(plugin_err))
}
