//! Per-invocation host state: the WASI context (nothing ambient), the network hook, the
//! memory limiter, and the host interfaces (`host`, `kv`) the plugin may import.

use crate::bindings::action::secflow::plugin::{host, kv};
use crate::bindings::{KvError, LogLevel};
use crate::http::NetHooks;
use crate::kv::{KvFailure, KvStore};
use serde::Serialize;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Metrics beyond this count per invocation are dropped (and counted), not trapped, so a
/// chatty plugin is throttled without failing.
pub const MAX_METRICS: usize = 10_000;

/// A line the plugin logged, through `host.log` or its stdout/stderr.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

/// A metric sample emitted by the plugin.
#[derive(Debug, Clone, Serialize)]
pub struct MetricSample {
    pub name: String,
    pub value: f64,
    pub labels: Vec<(String, String)>,
}

/// A limit the host itself enforced by trapping, recorded before the trap so the error can
/// be classified precisely.
#[derive(Debug, Clone, PartialEq)]
pub enum HostViolation {
    Memory { requested: u64, limit: u64 },
    LogFlood { limit: u64 },
}

/// Caps linear memory for the whole store (all memories together) and tracks the peak.
#[derive(Debug)]
pub struct MemoryLimiter {
    pub limit: usize,
    pub total: usize,
    pub peak: usize,
    pub violation: Option<HostViolation>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.limit {
            self.violation = Some(HostViolation::Memory {
                requested: total as u64,
                limit: self.limit as u64,
            });
            // Trap instead of returning -1: a guest that ignores a failed grow (or a Rust
            // allocator that aborts) must end with a clear "memory limit" error.
            wasmtime::bail!("memory limit of {} bytes exceeded", self.limit);
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        4
    }
}

/// Everything one invocation's store holds.
pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http_ctx: WasiHttpCtx,
    pub hooks: NetHooks,
    pub limiter: MemoryLimiter,
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub logs: Vec<LogLine>,
    pub log_budget: u64,
    pub log_limit: u64,
    pub metrics: Vec<MetricSample>,
    pub metrics_dropped: u64,
    pub kv: Option<Result<KvStore, String>>,
    pub violation: Option<HostViolation>,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState").finish_non_exhaustive()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http_ctx,
        }
    }
}

impl HostState {
    fn charge_log(&mut self, bytes: usize) -> wasmtime::Result<()> {
        let bytes = bytes as u64;
        if bytes > self.log_budget {
            self.violation = Some(HostViolation::LogFlood {
                limit: self.log_limit,
            });
            wasmtime::bail!("log limit of {} bytes exceeded", self.log_limit);
        }
        self.log_budget -= bytes;
        Ok(())
    }

    fn kv_store(&mut self) -> Result<&mut KvStore, KvError> {
        match &mut self.kv {
            Some(Ok(store)) => Ok(store),
            Some(Err(e)) => Err(KvError::Io(e.clone())),
            None => Err(KvError::Io("this plugin has no kv capability".to_string())),
        }
    }
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

impl host::Host for HostState {
    fn log(
        &mut self,
        level: LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        self.charge_log(size)?;
        self.logs.push(LogLine {
            level: level_name(level).to_string(),
            message,
            fields,
        });
        Ok(())
    }

    fn config_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).map(|v| v.to_string()))
    }

    fn emit_metric(
        &mut self,
        name: String,
        value: f64,
        labels: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        if self.metrics.len() >= MAX_METRICS || name.len() > 256 {
            self.metrics_dropped += 1;
        } else {
            self.metrics.push(MetricSample {
                name,
                value,
                labels,
            });
        }
        Ok(())
    }
}

fn kv_error(e: KvFailure) -> KvError {
    match e {
        KvFailure::Quota { .. } => KvError::QuotaExceeded(e.to_string()),
        KvFailure::InvalidKey(m) => KvError::InvalidKey(m),
        KvFailure::Io(m) => KvError::Io(m),
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, KvError>> {
        Ok(self.kv_store().and_then(|s| s.get(&key).map_err(kv_error)))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), KvError>> {
        Ok(self
            .kv_store()
            .and_then(|s| s.set(&key, value).map_err(kv_error)))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), KvError>> {
        Ok(self
            .kv_store()
            .and_then(|s| s.delete(&key).map_err(kv_error)))
    }

    fn list_keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, KvError>> {
        Ok(self.kv_store().map(|s| s.list_keys(&prefix)))
    }
}

impl crate::bindings::action::secflow::plugin::types::Host for HostState {}
