//! `proxy-filter`: inspects, blocks or modifies HTTP requests and responses.

use crate::bindings as b;
use crate::host::HostState;
use crate::invoke::{Call, CallResult, Output, plugin_err};
use wasmtime::Store;
use wasmtime::component::InstancePre;

pub(super) fn pre(
    instance: InstancePre<HostState>,
) -> wasmtime::Result<b::proxy_filter::ProxyFilterPluginPre<HostState>> {
    b::proxy_filter::ProxyFilterPluginPre::new(instance)
}

pub(super) fn supports(call: &Call) -> bool {
    matches!(call, Call::OnRequest(_) | Call::OnResponse(..))
}

pub(super) async fn run(
    pre: &b::proxy_filter::ProxyFilterPluginPre<HostState>,
    store: &mut Store<HostState>,
    config: &str,
    call: Call,
) -> CallResult {
    let p = pre.instantiate_async(&mut *store).await?;
    init_or_return!(p, store, config);
    health_or_continue!(p, store, call);
    let api = p.secflow_plugin_proxy_filter();
    match call {
        Call::OnRequest(req) => Ok(api
            .call_on_request(&mut *store, &req)
            .await?
            .map(Output::RequestVerdict)
            .map_err(plugin_err)),
        Call::OnResponse(req, resp) => Ok(api
            .call_on_response(&mut *store, &req, &resp)
            .await?
            .map(Output::ResponseVerdict)
            .map_err(plugin_err)),
        _ => unreachable!("checked by supports()"),
    }
}
