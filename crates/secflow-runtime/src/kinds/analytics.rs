//! `analytics`: computes metrics and a summary over findings.

use crate::bindings as b;
use crate::host::HostState;
use crate::invoke::{Call, CallResult, Output, plugin_err};
use wasmtime::Store;
use wasmtime::component::InstancePre;

pub(super) fn pre(
    instance: InstancePre<HostState>,
) -> wasmtime::Result<b::analytics::AnalyticsPluginPre<HostState>> {
    b::analytics::AnalyticsPluginPre::new(instance)
}

pub(super) fn supports(call: &Call) -> bool {
    matches!(call, Call::Analyze(_))
}

pub(super) async fn run(
    pre: &b::analytics::AnalyticsPluginPre<HostState>,
    store: &mut Store<HostState>,
    config: &str,
    call: Call,
) -> CallResult {
    let p = pre.instantiate_async(&mut *store).await?;
    init_or_return!(p, store, config);
    health_or_continue!(p, store, call);
    let Call::Analyze(findings) = call else {
        unreachable!("checked by supports()")
    };
    Ok(p.secflow_plugin_analytics()
        .call_analyze(&mut *store, &findings)
        .await?
        .map(Output::Report)
        .map_err(plugin_err))
}
