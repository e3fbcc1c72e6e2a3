//! Per-invocation host state: the WASI context (nothing ambient), the network hook, the
//! memory limiter, the budget of what the host keeps for the plugin, and the key-value
//! store. The imports that use it are in `imports.rs` and `fsglue.rs`.

use crate::budget::Budget;
use crate::capture::CapturedOutput;
use crate::fsguard::FsGuard;
use crate::guard::{Guard, HostViolation};
use crate::http::NetHooks;
use crate::kv::KvStore;
use serde::Serialize;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

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

/// Caps linear memory for the whole store (all memories together) and tracks the peak.
#[derive(Debug)]
pub struct MemoryLimiter {
    pub limit: usize,
    pub total: usize,
    pub peak: usize,
    pub guard: Guard,
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
            self.guard.violate(HostViolation::Memory {
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
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Log lines and metric samples are kept only after the budget charged them.
    pub budget: Budget,
    pub logs: Vec<LogLine>,
    pub metrics: Vec<MetricSample>,
    pub kv: Option<Result<KvStore, String>>,
    pub fs: FsGuard,
    /// Shared with the limiter, the captured streams, the filesystem guard and the imports.
    pub guard: Guard,
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
