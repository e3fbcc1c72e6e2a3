//! `action`: generic actions, `actions()` and `execute(action, params)`.

use crate::bindings as b;
use crate::error::InvokeError;
use crate::host::HostState;
use crate::invoke::{Call, CallResult, Output, plugin_err};
use wasmtime::Store;
use wasmtime::component::InstancePre;

pub(super) fn pre(
    instance: InstancePre<HostState>,
) -> wasmtime::Result<b::action::ActionPluginPre<HostState>> {
    b::action::ActionPluginPre::new(instance)
}

pub(super) fn supports(call: &Call) -> bool {
    matches!(call, Call::Actions | Call::Execute { .. })
}

pub(super) async fn run(
    pre: &b::action::ActionPluginPre<HostState>,
    store: &mut Store<HostState>,
    config: &str,
    call: Call,
    output_limit: u64,
) -> CallResult {
    let p = pre.instantiate_async(&mut *store).await?;
    init_or_return!(p, store, config);
    health_or_continue!(p, store, call);
    let api = p.secflow_plugin_action();
    match call {
        Call::Actions => Ok(Ok(Output::Actions(api.call_actions(&mut *store).await?))),
        Call::Execute { action, params } => Ok(
            match api.call_execute(&mut *store, &action, &params).await? {
                // Measured as returned, before it is parsed into a second copy.
                Ok(json) if json.len() as u64 > output_limit => Err(InvokeError::OutputTooLarge {
                    what: "the returned value".into(),
                    limit: output_limit,
                }),
                Ok(json) => serde_json::from_str(&json).map(Output::Json).map_err(|e| {
                    InvokeError::InvalidOutput {
                        message: format!("the action result is not JSON: {e}"),
                    }
                }),
                Err(e) => Err(plugin_err(e)),
            },
        ),
        _ => unreachable!("checked by supports()"),
    }
}
