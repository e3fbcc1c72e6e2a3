//! `detector`: scans files and returns findings, one file per call or a batch of files in
//! one instance (a scan's batches).

use crate::bindings as b;
use crate::error::InvokeError;
use crate::host::HostState;
use crate::invoke::{Call, CallResult, Output, json_size, plugin_err};
use wasmtime::Store;
use wasmtime::component::InstancePre;

pub(super) fn pre(
    instance: InstancePre<HostState>,
) -> wasmtime::Result<b::detector::DetectorPluginPre<HostState>> {
    b::detector::DetectorPluginPre::new(instance)
}

pub(super) fn supports(call: &Call) -> bool {
    matches!(call, Call::Detect(_) | Call::DetectBatch(_))
}

pub(super) async fn run(
    pre: &b::detector::DetectorPluginPre<HostState>,
    store: &mut Store<HostState>,
    config: &str,
    call: Call,
    output_limit: u64,
) -> CallResult {
    let p = pre.instantiate_async(&mut *store).await?;
    init_or_return!(p, store, config);
    health_or_continue!(p, store, call);
    let api = p.secflow_plugin_detector();
    match call {
        Call::Detect(file) => Ok(api
            .call_detect(&mut *store, &file)
            .await?
            .map(Output::Findings)
            .map_err(plugin_err)),
        Call::DetectBatch(files) => detect_each(api, store, &files, output_limit).await,
        _ => unreachable!("checked by supports()"),
    }
}

/// Runs `detect` on each file in one instance, stopping as soon as the findings of the
/// batch so far exceed the output limit: the limit applies to the batch as a whole, so the
/// host never holds more than one call's worth past it.
pub(crate) async fn detect_each(
    api: &b::detector::exports::secflow::plugin::detector::Guest,
    store: &mut Store<HostState>,
    files: &[b::FileInput],
    output_limit: u64,
) -> CallResult {
    let mut results = Vec::with_capacity(files.len());
    let mut size = 0u64;
    for file in files {
        let found = api.call_detect(&mut *store, file).await?;
        size = size.saturating_add(json_size(&found));
        if size > output_limit {
            return Ok(Err(InvokeError::OutputTooLarge {
                what: format!("the findings of a batch of {} files", files.len()),
                limit: output_limit,
            }));
        }
        results.push(found);
    }
    Ok(Ok(Output::BatchFindings(results)))
}
