//! The `secflow:plugin/host` and `secflow:plugin/kv` imports.
//!
//! These are written by hand instead of through the generated `Host` traits so that no
//! argument is copied into host memory before it is measured: strings and lists arrive as
//! `WasmStr`/`WasmList` views of the guest's memory, their sizes are charged to the
//! invocation's budget (or checked against the store's quota), and only what was allowed is
//! copied. A call past a cap fails with a typed violation (`log-limit`, `metric-limit`,
//! `kv-limit`) instead of a generic trap, and invalid UTF-8 is `invalid-output`.

use crate::bindings::{KvError, LogLevel};
use crate::budget::{BudgetExceeded, LogCall, MAX_LOG_FIELDS, MetricCall};
use crate::guard::HostViolation;
use crate::host::{HostState, LogLine, MetricSample};
use crate::kv::KvFailure;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmList, WasmStr};

const HOST: &str = "secflow:plugin/host@0.1.0";
const KV: &str = "secflow:plugin/kv@0.1.0";
const TYPES: &str = "secflow:plugin/types@0.1.0";

type Cx<'a> = StoreContextMut<'a, HostState>;

/// A guest string, validated as UTF-8 without copying. Invalid UTF-8 is a contract
/// violation, recorded before the call traps.
fn text<'a>(cx: &'a Cx<'_>, s: &WasmStr, what: &str) -> wasmtime::Result<&'a str> {
    match s.to_str(cx) {
        Ok(std::borrow::Cow::Borrowed(t)) => Ok(t),
        // Only UTF-8 components exist today; a transcoded string is measured after the
        // copy wasmtime made, which its hostcall fuel bounds.
        Ok(std::borrow::Cow::Owned(_)) => Ok(""),
        Err(_) => {
            let message = format!("{what} is not valid UTF-8");
            cx.data().guard.violate(HostViolation::InvalidOutput {
                message: message.clone(),
            });
            wasmtime::bail!("{message}")
        }
    }
}

fn owned(cx: &Cx<'_>, s: &WasmStr, what: &str) -> wasmtime::Result<String> {
    match s.to_str(cx) {
        Ok(t) => Ok(t.into_owned()),
        Err(_) => {
            let message = format!("{what} is not valid UTF-8");
            cx.data().guard.violate(HostViolation::InvalidOutput {
                message: message.clone(),
            });
            wasmtime::bail!("{message}")
        }
    }
}

/// Reads the pairs of a `list<tuple<string, string>>` whose length was already checked.
fn pairs(
    cx: &mut Cx<'_>,
    list: &WasmList<(WasmStr, WasmStr)>,
) -> wasmtime::Result<Vec<(WasmStr, WasmStr)>> {
    list.iter(&mut *cx)?.collect()
}

/// Stops the call with a budget violation.
fn exceeded(cx: &Cx<'_>, exceeded: BudgetExceeded) -> wasmtime::Error {
    let error = wasmtime::format_err!("{exceeded}");
    cx.data().guard.violate(HostViolation::Budget(exceeded));
    error
}

fn log(
    mut cx: Cx<'_>,
    (level, message, fields): (LogLevel, WasmStr, WasmList<(WasmStr, WasmStr)>),
) -> wasmtime::Result<()> {
    // Count first: a line with a million fields is refused before they are read.
    let field_count = fields.len();
    if field_count > MAX_LOG_FIELDS {
        let what = format!("a log line carried {field_count} structured fields");
        let limit = MAX_LOG_FIELDS as u64;
        return Err(exceeded(&cx, BudgetExceeded::Log { what, limit }));
    }
    let views = pairs(&mut cx, &fields)?;
    let mut sizes = Vec::with_capacity(views.len());
    for (k, v) in &views {
        sizes.push((
            text(&cx, k, "a log field name")?.len(),
            text(&cx, v, "a log field value")?.len(),
        ));
    }
    let message_len = text(&cx, &message, "a log message")?.len();
    let charged = cx.data_mut().budget.charge_log(LogCall {
        message_len,
        fields: &sizes,
    });
    if let Err(e) = charged {
        return Err(exceeded(&cx, e));
    }
    let message = owned(&cx, &message, "a log message")?;
    let mut owned_fields = Vec::with_capacity(views.len());
    for (k, v) in &views {
        owned_fields.push((
            owned(&cx, k, "a log field name")?,
            owned(&cx, v, "a log field value")?,
        ));
    }
    cx.data_mut().logs.push(LogLine {
        level: level_name(level).to_string(),
        message,
        fields: owned_fields,
    });
    Ok(())
}

fn emit_metric(
    mut cx: Cx<'_>,
    (name, value, labels): (WasmStr, f64, WasmList<(WasmStr, WasmStr)>),
) -> wasmtime::Result<()> {
    use crate::budget::{
        MAX_LABEL_NAME_BYTES, MAX_LABEL_VALUE_BYTES, MAX_METRIC_LABELS, MAX_METRIC_NAME_BYTES,
    };
    let metric = |what: String, limit: usize| BudgetExceeded::Metric {
        what,
        limit: limit as u64,
    };
    // Counts and sizes first, measured in guest memory: past these checks every piece is at
    // most a few hundred bytes, so copying it before the budget charges it is cheap.
    let label_count = labels.len();
    if label_count > MAX_METRIC_LABELS {
        let what = format!("a metric sample has {label_count} labels");
        return Err(exceeded(&cx, metric(what, MAX_METRIC_LABELS)));
    }
    let name_len = text(&cx, &name, "a metric name")?.len();
    if name_len == 0 || name_len > MAX_METRIC_NAME_BYTES {
        let what = format!(
            "a metric name is {name_len} bytes; names are 1 to {MAX_METRIC_NAME_BYTES} bytes"
        );
        return Err(exceeded(&cx, metric(what, MAX_METRIC_NAME_BYTES)));
    }
    let name = owned(&cx, &name, "a metric name")?;
    let mut copied = Vec::with_capacity(label_count);
    for (k, v) in pairs(&mut cx, &labels)? {
        let (k_len, v_len) = (
            text(&cx, &k, "a label name")?.len(),
            text(&cx, &v, "a label value")?.len(),
        );
        if k_len == 0 || k_len > MAX_LABEL_NAME_BYTES {
            let what = format!(
                "a label name of metric `{name}` is {k_len} bytes; label names are 1 to \
                 {MAX_LABEL_NAME_BYTES} bytes"
            );
            return Err(exceeded(&cx, metric(what, MAX_LABEL_NAME_BYTES)));
        }
        let key = owned(&cx, &k, "a label name")?;
        if v_len > MAX_LABEL_VALUE_BYTES {
            let what = format!("label `{key}` of metric `{name}` has a {v_len}-byte value");
            return Err(exceeded(&cx, metric(what, MAX_LABEL_VALUE_BYTES)));
        }
        copied.push((key, owned(&cx, &v, "a label value")?));
    }
    let borrowed: Vec<(&str, &str)> = copied
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let charged = cx.data_mut().budget.charge_metric(MetricCall {
        name: &name,
        labels: &borrowed,
    });
    if let Err(e) = charged {
        return Err(exceeded(&cx, e));
    }
    cx.data_mut().metrics.push(MetricSample {
        name,
        value,
        labels: copied,
    });
    Ok(())
}

fn config_get(cx: Cx<'_>, (key,): (WasmStr,)) -> wasmtime::Result<(Option<String>,)> {
    let key = text(&cx, &key, "a config key")?;
    Ok((cx.data().config.get(key).map(|v| v.to_string()),))
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// The plugin's error for a kv failure; quota and size problems are also recorded as a
/// `kv-limit` violation, so the invocation fails with it even if the plugin carries on.
fn kv_error(cx: &Cx<'_>, e: KvFailure) -> KvError {
    match e {
        KvFailure::Quota { wanted, quota } => {
            cx.data().guard.violate(HostViolation::Kv {
                what: format!("a write would make the store hold {wanted} bytes"),
                limit: quota,
            });
            KvError::QuotaExceeded(format!(
                "the store would hold {wanted} bytes; its quota is {quota} bytes"
            ))
        }
        KvFailure::InvalidKey(m) => KvError::InvalidKey(m),
        KvFailure::Io(m) => KvError::Io(m),
    }
}

/// The store, or the error a plugin without one gets. A plugin that declares the store
/// but was not granted it (a declined `kv` at install) is refused like any capability it
/// does not hold: `capability-denied`, counted.
fn kv_store(cx: &Cx<'_>) -> Result<crate::kv::KvStore, KvError> {
    match &cx.data().kv {
        Some(Ok(store)) => Ok(store.clone()),
        Some(Err(e)) => Err(KvError::Io(e.clone())),
        None => {
            let reason = "the key-value store is not granted to this plugin";
            cx.data().guard.deny("kv", reason);
            Err(KvError::Io(reason.to_string()))
        }
    }
}

/// The store and the key of a kv call, the key checked for length before it is copied; or
/// the error the plugin gets.
fn kv_call(
    cx: &Cx<'_>,
    key: &WasmStr,
) -> wasmtime::Result<Result<(crate::kv::KvStore, String), KvError>> {
    let k = text(cx, key, "a kv key")?;
    if let Err(e) = crate::kv::check_key(k) {
        return Ok(Err(KvError::InvalidKey(e.to_string())));
    }
    let key = k.to_string();
    Ok(kv_store(cx).map(|store| (store, key)))
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.instance(TYPES)?;
    let mut host = linker.instance(HOST)?;
    host.func_wrap("log", log)?;
    host.func_wrap("config-get", config_get)?;
    host.func_wrap("emit-metric", emit_metric)?;

    let mut kv = linker.instance(KV)?;
    kv.func_wrap_async("get", |cx: Cx<'_>, (key,): (WasmStr,)| {
        Box::new(async move {
            let (store, key) = match kv_call(&cx, &key)? {
                Ok(call) => call,
                Err(e) => return Ok((Err(e),)),
            };
            let result = store.get(&key).await;
            Ok((result.map_err(|e| kv_error(&cx, e)),))
        })
    })?;
    kv.func_wrap_async(
        "set",
        |cx: Cx<'_>, (key, value): (WasmStr, WasmList<u8>)| {
            Box::new(async move {
                let (store, key) = match kv_call(&cx, &key)? {
                    Ok(call) => call,
                    Err(e) => return Ok((Err(e),)),
                };
                // Measured in place: a value larger than the whole quota is refused before
                // a byte of it is copied.
                let cost = crate::kv::entry_cost(key.len(), value.len());
                if cost > store.quota() {
                    let e = KvFailure::Quota {
                        wanted: cost,
                        quota: store.quota(),
                    };
                    return Ok((Err(kv_error(&cx, e)),));
                }
                let bytes = value.as_le_slice(&cx).to_vec();
                let result = store.set(&key, &bytes).await;
                Ok((result.map_err(|e| kv_error(&cx, e)),))
            })
        },
    )?;
    kv.func_wrap_async("delete", |cx: Cx<'_>, (key,): (WasmStr,)| {
        Box::new(async move {
            let (store, key) = match kv_call(&cx, &key)? {
                Ok(call) => call,
                Err(e) => return Ok((Err(e),)),
            };
            let result = store.delete(&key).await;
            Ok((result.map_err(|e| kv_error(&cx, e)),))
        })
    })?;
    kv.func_wrap_async("list-keys", |cx: Cx<'_>, (prefix,): (WasmStr,)| {
        Box::new(async move {
            let prefix = text(&cx, &prefix, "a kv prefix")?.to_string();
            let store = match kv_store(&cx) {
                Ok(s) => s,
                Err(e) => return Ok((Err(e),)),
            };
            let result = store.list_keys(&prefix).await;
            Ok((result.map_err(|e| kv_error(&cx, e)),))
        })
    })?;
    Ok(())
}
