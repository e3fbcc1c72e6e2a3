//! The SecFlow sandbox: runs untrusted plugin components on wasmtime 48 with hard limits and
//! explicit capabilities.
//!
//! Every invocation gets a fresh instance from a pre-linked component (pooling allocator),
//! a store with a memory limiter, an epoch deadline (and a fuel budget when metered), WASI
//! with nothing ambient (no env, args, stdin or sockets; only granted directories; stdout and
//! stderr into bounded buffers), and `wasi:http` behind a hook that checks scheme, host, port
//! and every resolved address. The result is always a [`Report`] plus an [`Output`] or a
//! typed [`InvokeError`]. Components are compiled once and cached, authenticated, on disk.
//!
//! Depends on `secflow-manifest` for the plugin's declared capabilities and limits; used by
//! the CLI, and later by the scan pipeline, the registry and the proxy. This is the only
//! SecFlow crate that depends on wasmtime.

pub mod bindings;
pub mod budget;
pub mod cache;
pub mod capture;
pub mod contract;
mod engine;
mod error;
mod fsglue;
pub mod fsguard;
pub mod guard;
mod host;
pub mod http;
mod imports;
mod invoke;
mod kinds;
pub mod kv;
pub mod netpolicy;
mod plugin;

pub use cache::CacheOutcome;
pub use engine::{CacheKey, Runtime, RuntimeConfig};
pub use error::{InvokeError, LoadError};
pub use host::{LogLine, MetricSample};
pub use invoke::{
    Call, DetectSession, HostUsage, Invocation, Output, Report, Tighter, hostcall_budget,
};
pub use kv::{KvGrant, KvNamespace};
pub use plugin::{FsGrant, Grants, Plugin, check_import};
