//! `enricher`: adds data (CWE, CVSS, KEV, ...) to findings; the host reconciles what comes back.

use crate::bindings as b;
use crate::host::HostState;
use crate::invoke::{Call, CallResult, Output, plugin_err};
use wasmtime::Store;
use wasmtime::component::InstancePre;

pub(super) fn pre(
    instance: InstancePre<HostState>,
) -> wasmtime::Result<b::enricher::EnricherPluginPre<HostState>> {
    b::enricher::EnricherPluginPre::new(instance)
}

pub(super) fn supports(call: &Call) -> bool {
    matches!(call, Call::Enrich(_))
}

pub(super) async fn run(
    pre: &b::enricher::EnricherPluginPre<HostState>,
    store: &mut Store<HostState>,
    config: &str,
    call: Call,
) -> CallResult {
    let p = pre.instantiate_async(&mut *store).await?;
    init_or_return!(p, store, config);
    health_or_continue!(p, store, call);
    let Call::Enrich(findings) = call else {
        unreachable!("checked by supports()")
    };
    Ok(p.secflow_plugin_enricher()
        .call_enrich(&mut *store, &findings)
        .await?
        .map(Output::Findings)
        .map_err(plugin_err))
}
