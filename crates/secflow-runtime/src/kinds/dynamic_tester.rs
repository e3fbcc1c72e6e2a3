//! `dynamic-tester`: probes a declared target and reports attack results.

use crate::bindings as b;
use crate::host::HostState;
use crate::invoke::{Call, CallResult, Output, plugin_err};
use wasmtime::Store;
use wasmtime::component::InstancePre;

pub(super) fn pre(
    instance: InstancePre<HostState>,
) -> wasmtime::Result<b::dynamic_tester::DynamicTesterPluginPre<HostState>> {
    b::dynamic_tester::DynamicTesterPluginPre::new(instance)
}

pub(super) fn supports(call: &Call) -> bool {
    matches!(call, Call::RunTests { .. })
}

pub(super) async fn run(
    pre: &b::dynamic_tester::DynamicTesterPluginPre<HostState>,
    store: &mut Store<HostState>,
    config: &str,
    call: Call,
) -> CallResult {
    let p = pre.instantiate_async(&mut *store).await?;
    init_or_return!(p, store, config);
    health_or_continue!(p, store, call);
    let Call::RunTests { target, config } = call else {
        unreachable!("checked by supports()")
    };
    Ok(p.secflow_plugin_dynamic_tester()
        .call_run_tests(&mut *store, &target, &config)
        .await?
        .map(Output::AttackResults)
        .map_err(plugin_err))
}
