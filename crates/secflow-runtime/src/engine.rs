//! The wasmtime engines, their linker and the host-wide limits.
//!
//! One engine without fuel serves most plugins (epoch deadlines cost little); a second engine
//! with fuel metering is created the first time a plugin asks for a fuel budget, so metering
//! is paid only by the plugins that want it. Both use the pooling allocator (fresh instances
//! in about 10 µs) and fall back to on-demand allocation where the address space is too
//! small for the pool.

use crate::cache::CompileCache;
use crate::fsguard::SharedUsage;
use crate::host::HostState;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The secret that authenticates the compile cache; shown redacted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CacheKey(pub [u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(<redacted>)")
    }
}

/// Host-wide settings of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where precompiled components are cached. `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// The key that authenticates cached components; the cache is used only when it is
    /// set. Derive it from a secret kept outside `cache_dir` (the CLI uses the host key), so
    /// that write access to the cache is not enough to plant native code.
    pub cache_key: Option<CacheKey>,
    /// Where plugins' key-value stores live. `None` gives plugins with a kv grant an error.
    pub kv_dir: Option<PathBuf>,
    /// Most invocations running at once across all plugins.
    pub max_concurrent: usize,
    /// Most invocations of one plugin at once, so one plugin cannot take every slot.
    pub max_concurrent_per_plugin: usize,
    /// Use the pooling allocator (falls back to on-demand if it cannot reserve memory).
    pub pooling: bool,
    /// Epoch tick: the resolution of wall-clock deadlines.
    pub epoch_tick: Duration,
    /// Bytes of wasm stack per invocation.
    pub max_wasm_stack: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RuntimeConfig {
            cache_dir: None,
            cache_key: None,
            kv_dir: None,
            max_concurrent: (cores * 4).clamp(8, 64),
            max_concurrent_per_plugin: (cores * 2).clamp(4, 32),
            pooling: true,
            epoch_tick: Duration::from_millis(5),
            max_wasm_stack: 512 << 10,
        }
    }
}

/// Bytes at the start of each linear memory reset in place rather than returned to the
/// kernel: the SDK's guest stack (128 KiB) plus room for a plugin's data and first heap pages.
const GUEST_RESIDENT_BYTES: usize = 256 << 10;

/// Wasm frames kept in a failed call's backtrace (wasmtime's default is 20).
pub(crate) const BACKTRACE_FRAMES: usize = 128;

/// Pool slots: a little above `max_concurrent`, because a slot is returned after the permit.
fn pool_config(slots: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 16)
        .total_memories(slots * 2)
        .total_tables(slots * 8)
        .total_stacks(slots)
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_core_instances_per_component(16)
        .max_memory_size(secflow_manifest::HOST_CEILINGS.memory_bytes as usize)
        // A fresh instance touches the top of its stack, its data and the start of its heap.
        // With the SDK's 128 KiB guest stack (`plugins/.cargo/config.toml`, the scaffold of
        // `plugin new`) all of that lies in the first 256 KiB of linear memory, which the
        // pool resets with a memcpy of the initial image and keeps mapped: no page faults on
        // the next instance and no `madvise` (with its TLB shootdowns) on teardown. Memory
        // beyond it is still returned with `madvise`. Figures in BENCHMARKS.md.
        .linear_memory_keep_resident(GUEST_RESIDENT_BYTES)
        // PAGEMAP_SCAN (reset only the pages written) would also avoid the faults, but in
        // wasmtime 48 it skips a written page that is swapped out or being migrated at the
        // moment of the scan, and such a page would keep the previous invocation's data.
        // The blind reset of a fixed prefix cannot miss a page. Set explicitly: wasmtime
        // says its default may become `Auto`.
        .pagemap_scan(wasmtime::Enabled::No)
        .table_keep_resident(64 << 10)
        // Fiber stacks hold only host frames and the wasm call stack, never guest-readable
        // data, so keeping their hot top resident is safe and saves a fault per page.
        .async_stack_keep_resident(128 << 10)
        // Batch decommits: one TLB shootdown for many freed slots instead of one each.
        .decommit_batch_size(16)
        .max_unused_warm_slots(slots.min(16));
    pool
}

/// An engine, the linker with every host interface, and the thread that ticks its epoch.
pub(crate) struct EngineSet {
    pub engine: Engine,
    pub linker: Linker<HostState>,
}

impl EngineSet {
    pub fn new(config: &RuntimeConfig, metered: bool) -> wasmtime::Result<EngineSet> {
        let build = |pooling: bool| {
            let mut cfg = Config::new();
            cfg.epoch_interruption(true)
                .consume_fuel(metered)
                // Deep enough to tell a guest-stack overflow from a memory bug (see
                // `invoke::recursed`); frames are only walked when a call fails.
                .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(BACKTRACE_FRAMES))
                // A trap carries the instances' globals, so a guest stack pointer that
                // wrapped past zero tells a stack overflow from a memory bug whatever the
                // frame size (`invoke::wrapped_stack_pointer`). Captured only on a trap.
                .coredump_on_trap(true)
                .max_wasm_stack(config.max_wasm_stack)
                .async_stack_size(config.max_wasm_stack + (1 << 20));
            if pooling {
                let slots = (config.max_concurrent as u32).saturating_add(8);
                cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(slots)));
            }
            Engine::new(&cfg)
        };
        let engine = match config.pooling {
            true => build(true).or_else(|e| {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                build(false)
            })?,
            false => build(false)?,
        };
        spawn_ticker(&engine, config.epoch_tick);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        crate::imports::add_to_linker(&mut linker)?;
        crate::fsglue::add_to_linker(&mut linker)?;
        Ok(EngineSet { engine, linker })
    }
}

/// Advances the engine's epoch every `tick` until the engine is dropped.
fn spawn_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("secflow-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .expect("spawn the epoch thread");
}

/// The sandbox host: engines, compile cache and concurrency limits. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: RuntimeConfig,
    pub plain: EngineSet,
    pub metered: OnceLock<Result<EngineSet, String>>,
    pub cache: Option<CompileCache>,
    pub slots: Arc<tokio::sync::Semaphore>,
    pub tls: Arc<rustls::ClientConfig>,
    pub kv: Option<crate::kv::KvStores>,
    /// Live usage of every writable directory invocations of this runtime write to.
    pub fs_usage: Mutex<HashMap<PathBuf, SharedUsage>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> wasmtime::Result<Runtime> {
        let plain = EngineSet::new(&config, false)?;
        let cache = match (&config.cache_dir, config.cache_key) {
            (Some(dir), Some(key)) => match CompileCache::open(dir, key.0) {
                Ok(cache) => Some(cache),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "component cache disabled");
                    None
                }
            },
            _ => None,
        };
        Ok(Runtime {
            inner: Arc::new(Inner {
                kv: config.kv_dir.clone().map(crate::kv::KvStores::new),
                slots: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent)),
                config,
                plain,
                metered: OnceLock::new(),
                cache,
                tls: crate::http::tls_config(),
                fs_usage: Mutex::default(),
            }),
        })
    }

    /// The shared usage of a writable directory, measured on first use. Keyed by the
    /// canonical path so two spellings of one directory share one quota.
    pub(crate) fn fs_usage(
        &self,
        dir: &std::path::Path,
        limits: &secflow_manifest::ResolvedLimits,
    ) -> Result<SharedUsage, crate::error::InvokeError> {
        let host_error = |e: std::io::Error| crate::error::InvokeError::Host {
            message: format!(
                "cannot measure the writable directory {}: {e}",
                dir.display()
            ),
        };
        let key = std::fs::canonicalize(dir).map_err(host_error)?;
        let mut all = self.inner.fs_usage.lock().unwrap();
        if let Some(usage) = all.get(&key) {
            return Ok(usage.clone());
        }
        let measured = crate::fsguard::measure(&key, limits.write_bytes, limits.write_files)
            .map_err(host_error)?;
        let usage: SharedUsage = Arc::new(Mutex::new(measured));
        all.insert(key, usage.clone());
        Ok(usage)
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    pub(crate) fn engines(&self, metered: bool) -> Result<&EngineSet, String> {
        if !metered {
            return Ok(&self.inner.plain);
        }
        self.inner
            .metered
            .get_or_init(|| EngineSet::new(&self.inner.config, true).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}
