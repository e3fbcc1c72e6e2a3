//! One invocation: a fresh store and instance, the limits armed, the call, the teardown, and
//! a report of what it cost. Nothing survives from one invocation to the next.

use crate::bindings::{self as b, PluginError};
use crate::budget::{Budget, BudgetLimits, BudgetUsage};
use crate::capture::CapturedOutput;
use crate::engine::Runtime;
use crate::error::InvokeError;
use crate::fsguard::{FsGuard, GrantQuota};
use crate::guard::Guard;
use crate::host::{HostState, LogLine, MemoryLimiter, MetricSample};
use crate::http::{NetHooks, NetLog};
use crate::kinds::KindPre;
use crate::plugin::Plugin;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::WasiHttpCtx;

/// Most resource handles (streams, pollables, HTTP fields...) a plugin may hold at once.
/// wasmtime's default is a million, each a host allocation.
const MAX_RESOURCE_HANDLES: usize = 4096;
/// Largest total size of one set of HTTP header fields the plugin builds (wasmtime's
/// default is 128 KiB); with [`MAX_RESOURCE_HANDLES`] this bounds what headers can hold.
const MAX_HTTP_FIELDS_BYTES: usize = 16 << 10;
/// Largest `get-random-bytes` answer (wasmtime's default is 64 MiB).
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// What one host call may copy from the plugin's memory into the host's, and what a
/// returned value may be before it is measured: the plugin's memory limit plus room for
/// its arguments. Every argument lies in the plugin's memory, so the host's own imports,
/// which measure arguments in place, never hit it; it bounds what any one call (WASI's
/// included) makes the host allocate to the plugin's memory size, which is what keeps the
/// host within twice the memory limit. An argument or result past it is `output-too-large`.
pub fn hostcall_budget(limits: &secflow_manifest::ResolvedLimits) -> u64 {
    limits.memory_bytes + (64 << 10)
}

/// What to ask the plugin. Each variant belongs to one kind.
#[derive(Debug, Clone)]
pub enum Call {
    Health,
    Detect(b::FileInput),
    /// Runs `detect` on each file in turn, in one instance initialized once: a scan job pays
    /// the plugin's `init` (compiling its rules) once per batch instead of once per file.
    /// Files of one batch always belong to one scan, so no state crosses scans.
    DetectBatch(Arc<Vec<b::FileInput>>),
    Enrich(Vec<b::Finding>),
    Analyze(Vec<b::Finding>),
    OnRequest(b::HttpRequest),
    OnResponse(b::HttpRequest, b::HttpResponse),
    AnalyzeLogs {
        source: String,
        entries: Vec<b::LogEntry>,
    },
    RunTests {
        target: b::Target,
        config: String,
    },
    Actions,
    Execute {
        action: String,
        params: String,
    },
}

impl Call {
    fn name(&self) -> &'static str {
        match self {
            Call::Health => "health",
            Call::Detect(_) => "detect",
            Call::DetectBatch(_) => "detect-batch",
            Call::Enrich(_) => "enrich",
            Call::Analyze(_) => "analyze",
            Call::OnRequest(_) => "on-request",
            Call::OnResponse(..) => "on-response",
            Call::AnalyzeLogs { .. } => "analyze-logs",
            Call::RunTests { .. } => "run-tests",
            Call::Actions => "actions",
            Call::Execute { .. } => "execute",
        }
    }

    /// Approximate bytes handed to the plugin.
    fn input_bytes(&self) -> u64 {
        match self {
            Call::Detect(f) => (f.path.len() + f.content.len()) as u64,
            Call::DetectBatch(files) => files
                .iter()
                .map(|f| (f.path.len() + f.content.len()) as u64)
                .sum(),
            Call::Execute { action, params } => (action.len() + params.len()) as u64,
            Call::RunTests { config, .. } => config.len() as u64,
            // Bodies are bytes: counted as bytes, not as the JSON array of numbers
            // serde would make of them (which cost a filter call ~10 µs to count).
            Call::OnRequest(r) => request_bytes(r),
            Call::OnResponse(r, p) => request_bytes(r) + response_bytes(p),
            other => json_size(&CallPayload(other)),
        }
    }
}

fn headers_bytes(headers: &[(String, String)]) -> u64 {
    headers
        .iter()
        .map(|(n, v)| (n.len() + v.len()) as u64)
        .sum()
}

/// Bytes of an HTTP request as a filter sees it: method, target, headers and body.
fn request_bytes(r: &b::HttpRequest) -> u64 {
    (r.method.len() + r.uri.len() + r.body.len()) as u64 + headers_bytes(&r.headers)
}

/// Bytes of an HTTP response as a filter sees it: status, headers and body.
fn response_bytes(r: &b::HttpResponse) -> u64 {
    2 + r.body.len() as u64 + headers_bytes(&r.headers)
}

/// Bytes a call returned, counted against the manifest's `output_bytes`. HTTP messages by
/// their bytes (a modified body of N bytes is N, not the ~3.5 N of its JSON array form);
/// everything else as the JSON it would be.
pub(crate) fn output_bytes(output: &Output) -> u64 {
    let block = |b: &b::Block| 2 + b.reason.len() as u64;
    match output {
        Output::RequestVerdict(v) => match v {
            b::RequestVerdict::Allow => 0,
            b::RequestVerdict::Block(b) => block(b),
            b::RequestVerdict::Modify(r) => request_bytes(r),
        },
        Output::ResponseVerdict(v) => match v {
            b::ResponseVerdict::Allow => 0,
            b::ResponseVerdict::Block(b) => block(b),
            b::ResponseVerdict::Modify(r) => response_bytes(r),
        },
        other => json_size(other),
    }
}

/// Bytes `value` takes as JSON, counted without building the text.
pub(crate) fn json_size<T: Serialize + ?Sized>(value: &T) -> u64 {
    struct Counter(u64);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => u64::MAX,
    }
}

struct CallPayload<'a>(&'a Call);

impl Serialize for CallPayload<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Call::Enrich(f) | Call::Analyze(f) => f.serialize(s),
            Call::AnalyzeLogs { entries, .. } => entries.serialize(s),
            Call::RunTests { target, .. } => target.serialize(s),
            _ => s.serialize_unit(),
        }
    }
}

/// What the plugin returned.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Output {
    Health(b::Health),
    Findings(Vec<b::Finding>),
    /// Per file of a [`Call::DetectBatch`], in input order.
    BatchFindings(Vec<Result<Vec<b::Finding>, PluginError>>),
    Report(b::Report),
    RequestVerdict(b::RequestVerdict),
    ResponseVerdict(b::ResponseVerdict),
    AttackResults(Vec<b::AttackResult>),
    Actions(Vec<b::ActionInfo>),
    /// An action's JSON result.
    Json(serde_json::Value),
}

/// What one invocation cost and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub plugin: String,
    pub version: String,
    pub call: String,
    pub wall_time_us: u64,
    /// Fuel consumed, when the plugin is metered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    pub peak_memory_bytes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub http_requests: u32,
    pub http_response_bytes: u64,
    /// Every request or access the host refused, with the reason.
    pub denials: Vec<String>,
    /// What the plugin made the host keep or write, against its budget.
    pub host: HostUsage,
}

/// What the plugin made the host hold (logs, metrics, captured output) or write (files in
/// writable grants) during the invocation, counted against its limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HostUsage {
    #[serde(flatten)]
    pub budget: BudgetUsage,
    /// Bytes the plugin wrote to stdout (kept or not).
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// Bytes by which the plugin grew files in its writable grants.
    pub fs_bytes_written: u64,
    /// Files, directories and links it created there.
    pub fs_files_created: u64,
}

fn host_usage(state: &HostState) -> HostUsage {
    let fs = state.fs.tally();
    HostUsage {
        budget: state.budget.usage(),
        stdout_bytes: state.stdout.attempted(),
        stderr_bytes: state.stderr.attempted(),
        fs_bytes_written: fs.bytes,
        fs_files_created: fs.files,
    }
}

/// The result of an invocation: always a report, and an output or a typed error.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    #[serde(serialize_with = "ser_outcome")]
    pub outcome: Result<Output, InvokeError>,
    pub report: Report,
    pub logs: Vec<LogLine>,
    pub metrics: Vec<MetricSample>,
}

fn ser_outcome<S: serde::Serializer>(
    outcome: &Result<Output, InvokeError>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Tagged<'a> {
        Ok(&'a Output),
        Error(&'a InvokeError),
    }
    match outcome {
        Ok(o) => Tagged::Ok(o).serialize(s),
        Err(e) => Tagged::Error(e).serialize(s),
    }
}

/// Limits a caller sets tighter than the plugin's own for one call (the proxy's per-filter
/// deadline and fuel). They only ever lower a limit: a value above the manifest's is the
/// manifest's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tighter {
    pub timeout_ms: Option<u64>,
    /// Needs a metered plugin (one whose manifest sets `limits.fuel`): only its compiled
    /// code counts fuel.
    pub fuel: Option<u64>,
}

impl Tighter {
    /// `limits` with these applied.
    pub fn apply(
        self,
        mut limits: secflow_manifest::ResolvedLimits,
    ) -> secflow_manifest::ResolvedLimits {
        if let Some(ms) = self.timeout_ms {
            limits.timeout_ms = limits.timeout_ms.min(ms);
        }
        if let (Some(fuel), Some(own)) = (self.fuel, limits.fuel) {
            limits.fuel = Some(own.min(fuel));
        }
        limits
    }
}

impl Runtime {
    /// Runs `call` on a fresh instance of `plugin` with `config` (a JSON object, validated
    /// against the manifest's `config-schema` before anything runs).
    pub async fn invoke(
        &self,
        plugin: &Plugin,
        call: Call,
        config: &serde_json::Value,
    ) -> Invocation {
        self.invoke_within(plugin, call, config, Tighter::default())
            .await
    }

    /// [`Runtime::invoke`] with limits tighter than the plugin's for this call.
    pub async fn invoke_within(
        &self,
        plugin: &Plugin,
        call: Call,
        config: &serde_json::Value,
        tighter: Tighter,
    ) -> Invocation {
        let limits = tighter.apply(plugin.limits);
        let mut report = Report {
            plugin: plugin.manifest.id.to_string(),
            version: plugin.manifest.version.to_string(),
            call: call.name().to_string(),
            bytes_in: call.input_bytes(),
            ..Report::default()
        };
        let fail = |report: Report, e: InvokeError| Invocation {
            outcome: Err(e),
            report,
            logs: Vec::new(),
            metrics: Vec::new(),
        };
        if !crate::kinds::supports(plugin.manifest.kind, &call) {
            let message = format!(
                "a {} plugin has no `{}` call",
                plugin.manifest.kind,
                call.name()
            );
            return fail(report, InvokeError::Unsupported { message });
        }
        if let Err(errors) = plugin.config.validate(config) {
            return fail(report, InvokeError::InvalidConfig { errors });
        }
        // Per-plugin slots first, so a flood of one plugin queues on its own semaphore and
        // leaves global slots for others.
        let Ok(_plugin_slot) = plugin.slots.acquire().await else {
            return fail(
                report,
                InvokeError::Host {
                    message: "runtime shut down".into(),
                },
            );
        };
        let Ok(_slot) = self.inner.slots.acquire().await else {
            return fail(
                report,
                InvokeError::Host {
                    message: "runtime shut down".into(),
                },
            );
        };
        let started = Instant::now();
        let net_log = Arc::new(Mutex::new(NetLog::default()));
        let deadline = Arc::new(Mutex::new(
            Instant::now() + Duration::from_millis(limits.timeout_ms),
        ));
        let mut store = match self.new_store(plugin, &limits, config, net_log.clone(), deadline) {
            Ok(store) => store,
            Err(e) => return fail(report, e),
        };
        let deadline = Duration::from_millis(limits.timeout_ms);
        let config_json = config.to_string();
        // The epoch callback stops CPU-bound wasm; the outer timeout stops a plugin blocked
        // in a host call (an HTTP read, a sleep). Both are wall-clock.
        let result = tokio::time::timeout(
            deadline + Duration::from_millis(50),
            crate::kinds::run(
                &plugin.pre,
                &mut store,
                &config_json,
                call,
                limits.output_bytes,
            ),
        )
        .await;
        report.wall_time_us = started.elapsed().as_micros() as u64;

        let outcome = match result {
            Err(_elapsed) => Err(InvokeError::Timeout {
                limit_ms: limits.timeout_ms,
            }),
            Ok(Ok(outcome)) => outcome,
            Ok(Err(trap)) => Err(classify(trap, &mut store, &limits)),
        };
        let state = store.data_mut();
        report.peak_memory_bytes = state.limiter.peak as u64;
        let (logs, metrics) = drain_output(state, &mut Drained::default());
        report.host = host_usage(state);
        let guard = state.guard.clone();
        if let (Some(budget), true) = (limits.fuel, plugin.metered) {
            report.fuel_used = store
                .get_fuel()
                .ok()
                .map(|left| budget.saturating_sub(left));
        }
        drop(store); // never reused: a trapped instance is poisoned, and state must not leak

        let net = std::mem::take(&mut *net_log.lock().unwrap());
        let outcome = settle(&mut report, outcome, net, &guard, &limits);
        Invocation {
            outcome,
            report,
            logs,
            metrics,
        }
    }

    fn new_store(
        &self,
        plugin: &Plugin,
        limits: &secflow_manifest::ResolvedLimits,
        config: &serde_json::Value,
        net_log: Arc<Mutex<NetLog>>,
        deadline: Deadline,
    ) -> Result<Store<HostState>, InvokeError> {
        let limits = *limits;
        let set = self
            .engines(plugin.metered)
            .map_err(|message| InvokeError::Host { message })?;
        let guard = Guard::default();
        let stdout = CapturedOutput::new("stdout", limits.log_bytes, guard.clone());
        let stderr = CapturedOutput::new("stderr", limits.log_bytes, guard.clone());
        // Nothing ambient: no env, no args, no stdin, no network sockets; only granted dirs.
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .max_random_size(MAX_RANDOM_BYTES);
        let mut quotas = Vec::with_capacity(plugin.grants.filesystem.len());
        for fs in &plugin.grants.filesystem {
            let perms = if fs.write {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&fs.host, &fs.guest, perms)
                .map_err(|e| InvokeError::Host {
                    message: format!(
                        "cannot open granted directory {} (for {}): {e}",
                        fs.host.display(),
                        fs.guest
                    ),
                })?;
            let usage = match fs.write {
                true => Some(self.fs_usage(&fs.host, &limits)?),
                false => None,
            };
            quotas.push(GrantQuota {
                guest: fs.guest.clone(),
                host: fs.host.clone(),
                write: fs.write,
                usage,
                max_bytes: limits.write_bytes,
                max_files: limits.write_files,
            });
        }
        let kv = plugin.grants.kv.as_ref().map(|grant| match &self.inner.kv {
            Some(stores) => Ok(stores.store(grant)),
            None => Err("no key-value store is configured on this host".to_string()),
        });
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCE_HANDLES);
        let mut http_ctx = WasiHttpCtx::new();
        http_ctx.set_field_size_limit(MAX_HTTP_FIELDS_BYTES);
        let state = HostState {
            wasi: wasi.build(),
            table,
            http_ctx,
            hooks: NetHooks {
                grants: plugin.net.clone(),
                max_requests: limits.http_requests,
                max_response_bytes: limits.http_response_bytes,
                log: net_log,
                tls: self.inner.tls.clone(),
            },
            limiter: MemoryLimiter {
                limit: limits.memory_bytes as usize,
                total: 0,
                peak: 0,
                guard: guard.clone(),
            },
            stdout,
            stderr,
            config: config.as_object().cloned().unwrap_or_default(),
            budget: Budget::new(BudgetLimits::of(&limits)),
            logs: Vec::new(),
            metrics: Vec::new(),
            kv,
            fs: FsGuard::new(quotas, guard.clone()),
            guard,
        };
        let mut store = Store::new(&set.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(usize::try_from(hostcall_budget(&limits)).unwrap_or(usize::MAX));
        if let Some(fuel) = limits.fuel {
            store.set_fuel(fuel).map_err(|e| InvokeError::Host {
                message: e.to_string(),
            })?;
            store
                .fuel_async_yield_interval(Some(10_000_000))
                .map_err(|e| InvokeError::Host {
                    message: e.to_string(),
                })?;
        }
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= *deadline.lock().unwrap() {
                UpdateDeadline::Interrupt
            } else {
                // Yield so other invocations on this thread get their turn.
                UpdateDeadline::Yield(1)
            })
        });
        store.set_epoch_deadline(1);
        Ok(store)
    }
}

/// Maps a wasmtime error to the typed reason, using what the host recorded before trapping.
/// The message is one line; the whole chain (with the wasm backtrace) goes to the log at
/// `info` level, which `secflow -v` shows.
fn classify(
    err: wasmtime::Error,
    store: &mut Store<HostState>,
    limits: &secflow_manifest::ResolvedLimits,
) -> InvokeError {
    let state = store.data_mut();
    tracing::info!(plugin_error = format!("{err:?}"), "plugin call failed");
    if let Some(v) = state.guard.take_violation() {
        return v.into_error();
    }
    if err
        .chain()
        .any(|e| e.to_string().contains(HOSTCALL_FUEL_EXHAUSTED))
    {
        // Without a wasm backtrace the failure was lifting the export's result.
        let what = match err.downcast_ref::<wasmtime::WasmBacktrace>() {
            Some(_) => "what the plugin passed to one host call",
            None => "the returned value",
        };
        return InvokeError::OutputTooLarge {
            what: what.into(),
            limit: hostcall_budget(limits),
        };
    }
    if err.chain().any(|e| e.is::<std::str::Utf8Error>()) {
        return InvokeError::InvalidOutput {
            message: "the plugin returned a string that is not valid UTF-8".into(),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Timeout {
            limit_ms: limits.timeout_ms,
        },
        Some(Trap::OutOfFuel) => InvokeError::OutOfFuel {
            limit: limits.fuel.unwrap_or(0),
        },
        Some(Trap::StackOverflow) => InvokeError::StackOverflow,
        Some(Trap::MemoryOutOfBounds) if recursed(&err) || wrapped_stack_pointer(&err, store) => {
            InvokeError::StackOverflow
        }
        Some(trap) => InvokeError::Trap {
            message: format!("{trap}{}", panic_message(store.data())),
        },
        None => InvokeError::Trap {
            message: one_line(&err),
        },
    }
}

/// wasmtime's message when a call moved more data than the store's hostcall fuel allows
/// (its error type is private).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// The first line of the outermost message that is not a backtrace.
fn one_line(err: &wasmtime::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .find(|m| !m.starts_with("error while executing at wasm backtrace"))
        .and_then(|m| m.lines().next().map(str::to_string))
        .unwrap_or_else(|| "the plugin trapped".into())
}

/// Whether the trap left a guest stack pointer wrapped past zero: a Rust guest keeps its
/// stack first in linear memory (`--stack-first`), so overflowing it, whatever the frame
/// size, moves `__stack_pointer` to the top of the 32-bit space before the first store
/// faults. No linear memory SecFlow allows comes near those addresses (the ceiling is
/// 1 GiB), so a memory bug does not look like this. Read from the trap's core dump: the
/// first mutable `i32` global of each instance is its stack pointer.
fn wrapped_stack_pointer(err: &wasmtime::Error, store: &mut Store<HostState>) -> bool {
    const WRAPPED: u32 = 0xFC00_0000;
    let Some(dump) = err.downcast_ref::<wasmtime::WasmCoreDump>() else {
        return false;
    };
    dump.globals().iter().any(|g| {
        let ty = g.ty(&*store);
        ty.mutability() == wasmtime::Mutability::Var
            && matches!(g.get(&mut *store), wasmtime::Val::I32(v) if v as u32 >= WRAPPED)
    })
}

/// Whether an out-of-bounds trap is the guest's own stack overflowing. A Rust guest keeps
/// its address-taken locals on a stack in linear memory, placed first (`--stack-first`):
/// overflowing it wraps the stack pointer past zero, and the next store is out of bounds.
/// Safe Rust cannot otherwise reach an out-of-bounds address, so such a trap under a call
/// stack deeper than the backtrace window, or under one function repeated many times, is
/// recursion. (One huge local array overflows it at any depth; that case is named in the
/// trap's message instead.)
fn recursed(err: &wasmtime::Error) -> bool {
    const REPEATS: usize = 16;
    let Some(trace) = err.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let frames = trace.frames();
    if frames.len() >= crate::engine::BACKTRACE_FRAMES {
        return true;
    }
    let mut calls: std::collections::HashMap<(Option<&str>, u32), usize> =
        std::collections::HashMap::new();
    frames.iter().any(|frame| {
        let n = calls
            .entry((frame.module().name(), frame.func_index()))
            .or_default();
        *n += 1;
        *n >= REPEATS
    })
}

/// The panic message a Rust guest printed to stderr before aborting, if any.
fn panic_message(state: &HostState) -> String {
    let text = state.stderr.text();
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().rposition(|l| l.contains("panicked at")) else {
        return String::new();
    };
    let message: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with("note:"))
        .map(|l| l.trim())
        .collect();
    let location = lines[start]
        .split("panicked at ")
        .nth(1)
        .unwrap_or("")
        .trim_end_matches(':');
    format!(" (plugin panicked at {location}: {})", message.join(" "))
}

pub(crate) type CallResult = wasmtime::Result<Result<Output, InvokeError>>;

/// How much of a store's captured stdout and stderr earlier calls already returned.
#[derive(Debug, Default)]
struct Drained {
    pipes: [usize; 2],
}

/// The log lines (host log, then stdout and stderr as lines) and metrics the plugin produced
/// since the last drain. A stream cut at its limit ends with a marker line.
fn drain_output(state: &mut HostState, drained: &mut Drained) -> (Vec<LogLine>, Vec<MetricSample>) {
    let mut logs = std::mem::take(&mut state.logs);
    let metrics = std::mem::take(&mut state.metrics);
    for (i, (stream, pipe)) in [("stdout", &state.stdout), ("stderr", &state.stderr)]
        .into_iter()
        .enumerate()
    {
        let (lines, next) = pipe.lines_since(drained.pipes[i]);
        drained.pipes[i] = next;
        logs.extend(lines.into_iter().map(|message| LogLine {
            level: stream.to_string(),
            message,
            fields: Vec::new(),
        }));
    }
    (logs, metrics)
}

/// Fills the report's network figures and applies the host's last word on the outcome: an
/// oversized or malformed return value is an error, and a refusal or quota the plugin met
/// (a denied request, a write past its quota, a write to a read-only grant) is the
/// invocation's error even if the plugin swallowed the error it got.
fn settle(
    report: &mut Report,
    mut outcome: Result<Output, InvokeError>,
    net: NetLog,
    guard: &Guard,
    limits: &secflow_manifest::ResolvedLimits,
) -> Result<Output, InvokeError> {
    report.http_requests = net.requests;
    report.http_response_bytes = net.response_bytes;
    report.denials = net.denials.iter().map(ToString::to_string).collect();
    report.denials.extend(guard.take_denials());
    if let Ok(output) = &outcome {
        let size = output_bytes(output);
        report.bytes_out = size;
        if size > limits.output_bytes {
            outcome = Err(InvokeError::OutputTooLarge {
                what: "the returned value".into(),
                limit: limits.output_bytes,
            });
        } else if let Err(message) = crate::contract::check_output(output) {
            outcome = Err(InvokeError::InvalidOutput { message });
        }
    }
    if !matches!(outcome, Err(ref e) if e.is_violation()) {
        if let Some(v) = guard.take_violation() {
            outcome = Err(v.into_error());
        } else if let Some(first) = net.denials.first() {
            outcome = Err(InvokeError::CapabilityDenied {
                capability: "network".into(),
                reason: first.to_string(),
            });
        }
    }
    if let Err(e) = &outcome {
        tracing::info!(plugin = %report.plugin, error = %e, kind = e.kind(), "invocation failed");
    }
    outcome
}

/// When the running call must stop; shared with the store's epoch callback so a session can
/// give each call its own deadline.
type Deadline = Arc<Mutex<Instant>>;

/// A detector instance kept for several batches of one scan job, so the plugin's `init`
/// (compiling its rules) runs once per job instead of once per batch.
///
/// Isolation holds because a session belongs to one scan and is dropped with it; a call
/// that fails (trap, limit, timeout) poisons the session, and the caller opens a new one.
/// Every call gets its own deadline, fuel budget and report; memory and log limits apply to
/// the session as a whole.
pub struct DetectSession {
    plugin: Arc<Plugin>,
    store: Store<HostState>,
    bindings: crate::bindings::detector::DetectorPlugin,
    deadline: Deadline,
    net_log: Arc<Mutex<NetLog>>,
    /// Log lines and pipe bytes already handed out by earlier calls.
    drained: Drained,
    poisoned: bool,
    _slots: (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    ),
}

impl std::fmt::Debug for DetectSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectSession")
            .field("plugin", &self.plugin.manifest.id)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Instantiates a detector and runs its `init` once; the session then scans batches
    /// with [`DetectSession::detect`]. On failure returns the invocation that failed.
    pub async fn detect_session(
        &self,
        plugin: Arc<Plugin>,
        config: &serde_json::Value,
    ) -> Result<DetectSession, Box<Invocation>> {
        let mut report = Report {
            plugin: plugin.manifest.id.to_string(),
            version: plugin.manifest.version.to_string(),
            call: "init".into(),
            ..Report::default()
        };
        let fail = |report: Report, e: InvokeError| {
            Box::new(Invocation {
                outcome: Err(e),
                report,
                logs: Vec::new(),
                metrics: Vec::new(),
            })
        };
        let KindPre::Detector(pre) = &plugin.pre else {
            let message = format!("a {} plugin is not a detector", plugin.manifest.kind);
            return Err(fail(report, InvokeError::Unsupported { message }));
        };
        if let Err(errors) = plugin.config.validate(config) {
            return Err(fail(report, InvokeError::InvalidConfig { errors }));
        }
        let shut = || InvokeError::Host {
            message: "runtime shut down".into(),
        };
        let Ok(plugin_slot) = plugin.slots.clone().acquire_owned().await else {
            return Err(fail(report, shut()));
        };
        let Ok(slot) = self.inner.slots.clone().acquire_owned().await else {
            return Err(fail(report, shut()));
        };
        let started = Instant::now();
        let timeout = Duration::from_millis(plugin.limits.timeout_ms);
        let deadline = Arc::new(Mutex::new(started + timeout));
        let net_log = Arc::new(Mutex::new(NetLog::default()));
        let mut store = match self.new_store(
            &plugin,
            &plugin.limits,
            config,
            net_log.clone(),
            deadline.clone(),
        ) {
            Ok(store) => store,
            Err(e) => return Err(fail(report, e)),
        };
        let config_json = config.to_string();
        let opened = tokio::time::timeout(timeout + Duration::from_millis(50), async {
            let p = pre.instantiate_async(&mut store).await?;
            let init = p.call_init(&mut store, &config_json).await?;
            wasmtime::Result::Ok((p, init))
        })
        .await;
        report.wall_time_us = started.elapsed().as_micros() as u64;
        let limits = plugin.limits;
        let error = match opened {
            Ok(Ok((bindings, Ok(())))) => {
                return Ok(DetectSession {
                    plugin,
                    store,
                    bindings,
                    deadline,
                    net_log,
                    drained: Drained::default(),
                    poisoned: false,
                    _slots: (plugin_slot, slot),
                });
            }
            Ok(Ok((_, Err(e)))) => plugin_err(e),
            Ok(Err(trap)) => classify(trap, &mut store, &limits),
            Err(_) => InvokeError::Timeout {
                limit_ms: limits.timeout_ms,
            },
        };
        report.peak_memory_bytes = store.data().limiter.peak as u64;
        Err(fail(report, error))
    }
}

impl DetectSession {
    /// False once a call failed: the instance may be in any state and must not run again.
    pub fn usable(&self) -> bool {
        !self.poisoned
    }

    /// Runs `detect` on each file, with a fresh deadline and fuel budget for this call.
    pub async fn detect(&mut self, files: Arc<Vec<b::FileInput>>) -> Invocation {
        let plugin = self.plugin.clone();
        let limits = plugin.limits;
        let call = Call::DetectBatch(files.clone());
        let mut report = Report {
            plugin: plugin.manifest.id.to_string(),
            version: plugin.manifest.version.to_string(),
            call: call.name().to_string(),
            bytes_in: call.input_bytes(),
            ..Report::default()
        };
        if self.poisoned {
            return Invocation {
                outcome: Err(InvokeError::Host {
                    message: "this session failed earlier; open a new one".into(),
                }),
                report,
                logs: Vec::new(),
                metrics: Vec::new(),
            };
        }
        let started = Instant::now();
        let timeout = Duration::from_millis(limits.timeout_ms);
        *self.deadline.lock().unwrap() = started + timeout;
        if let (Some(fuel), true) = (limits.fuel, plugin.metered) {
            let _ = self.store.set_fuel(fuel);
        }
        let store = &mut self.store;
        let api = self.bindings.secflow_plugin_detector();
        let result = tokio::time::timeout(
            timeout + Duration::from_millis(50),
            crate::kinds::detect_each(api, store, &files, limits.output_bytes),
        )
        .await;
        report.wall_time_us = started.elapsed().as_micros() as u64;
        let outcome = match result {
            Err(_elapsed) => Err(InvokeError::Timeout {
                limit_ms: limits.timeout_ms,
            }),
            Ok(Ok(outcome)) => outcome,
            Ok(Err(trap)) => Err(classify(trap, &mut self.store, &limits)),
        };
        let state = self.store.data_mut();
        report.peak_memory_bytes = state.limiter.peak as u64;
        let (logs, metrics) = drain_output(state, &mut self.drained);
        report.host = host_usage(state);
        let guard = state.guard.clone();
        if let (Some(budget), true) = (limits.fuel, plugin.metered) {
            report.fuel_used = self
                .store
                .get_fuel()
                .ok()
                .map(|left| budget.saturating_sub(left));
        }
        let net = std::mem::take(&mut *self.net_log.lock().unwrap());
        let outcome = settle(&mut report, outcome, net, &guard, &limits);
        if outcome.is_err() {
            self.poisoned = true;
        }
        Invocation {
            outcome,
            report,
            logs,
            metrics,
        }
    }
}

pub(crate) fn plugin_err(error: PluginError) -> InvokeError {
    InvokeError::Plugin { error }
}

#[cfg(test)]
mod tighter_tests {
    use super::Tighter;
    use secflow_manifest::DEFAULT_LIMITS;

    #[test]
    fn tighter_limits_only_ever_lower() {
        let metered = secflow_manifest::ResolvedLimits {
            fuel: Some(1_000),
            ..DEFAULT_LIMITS
        };
        let lower = Tighter {
            timeout_ms: Some(50),
            fuel: Some(10),
        };
        let applied = lower.apply(metered);
        assert_eq!((applied.timeout_ms, applied.fuel), (50, Some(10)));
        let higher = Tighter {
            timeout_ms: Some(60_000),
            fuel: Some(1 << 30),
        };
        let applied = higher.apply(metered);
        assert_eq!((applied.timeout_ms, applied.fuel), (5_000, Some(1_000)));
        // An unmetered plugin is not made metered: its code does not count fuel.
        assert_eq!(lower.apply(DEFAULT_LIMITS).fuel, None);
        assert_eq!(Tighter::default().apply(metered), metered);
    }
}

#[cfg(test)]
mod size_tests {
    use super::{Call, Output, output_bytes};
    use crate::bindings as b;

    fn request(body: usize) -> b::HttpRequest {
        b::HttpRequest {
            method: "POST".into(),
            uri: "/x".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: vec![b'a'; body],
        }
    }

    /// A body counts as its bytes, in and out: a modified body of 1 MiB is 1 MiB against
    /// `output_bytes`, not the ~3.5 MiB of the JSON array serde would make of it.
    #[test]
    fn http_messages_count_their_bytes_not_their_json() {
        let headers = ("content-type".len() + "text/plain".len()) as u64;
        assert_eq!(
            Call::OnRequest(request(1 << 20)).input_bytes(),
            4 + 2 + headers + (1 << 20)
        );
        let modified = Output::RequestVerdict(b::RequestVerdict::Modify(request(1 << 20)));
        assert_eq!(output_bytes(&modified), 4 + 2 + headers + (1 << 20));
        let response = b::HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: vec![0; 10],
        };
        assert_eq!(
            Call::OnResponse(request(0), response.clone()).input_bytes(),
            4 + 2 + headers + 2 + 10
        );
        let blocked = Output::ResponseVerdict(b::ResponseVerdict::Block(b::Block {
            status: 403,
            reason: "no".into(),
        }));
        assert_eq!(output_bytes(&blocked), 2 + 2);
        assert_eq!(
            output_bytes(&Output::ResponseVerdict(b::ResponseVerdict::Modify(
                response
            ))),
            12
        );
        assert_eq!(
            output_bytes(&Output::RequestVerdict(b::RequestVerdict::Allow)),
            0
        );
    }
}
