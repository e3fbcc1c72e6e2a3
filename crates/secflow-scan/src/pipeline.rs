//! The scan pipeline: walk → detectors and log analyzers (parallel, bounded memory) →
//! fingerprints, inline suppressions, dedup, baseline → enrichers in order → analytics.
//!
//! Every plugin runs in the sandbox. Detectors get files in batches; each worker keeps one
//! instance per detector for the batches it takes in this scan (a [`DetectSession`]), so a
//! plugin's `init` (compiling its rules) runs once per worker, not once per file or batch.
//! Instances never outlive the scan, so no state crosses scans. A plugin that fails does not fail the scan: a failed
//! batch is retried file by file so only the file that broke it loses that plugin's results,
//! the failure is reported, the scan is marked partial, and a plugin that keeps failing is
//! stopped for the rest of the scan.

use crate::baseline::Baseline;
use crate::fingerprint::{self, normalize_snippet};
use crate::model::{Finding, RuleInfo, Severity, sort_findings};
use crate::redact;
use crate::report::*;
use crate::suppress::is_suppressed_in;
use crate::walk::{self, Walked};
use secflow_manifest::PluginKind;
use secflow_runtime::bindings as b;
use secflow_runtime::{Call, DetectSession, Invocation, InvokeError, Output, Plugin, Runtime};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A plugin taking part in a scan, with its configuration.
#[derive(Debug, Clone)]
pub struct ScanPlugin {
    pub plugin: Arc<Plugin>,
    /// Validated against the manifest's `config-schema` before the plugin runs.
    pub config: serde_json::Value,
    /// `bundled`, `installed` or `dev`, shown in the statistics.
    pub origin: String,
}

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Batches processed at once (each batch runs its detectors one after another).
    pub jobs: usize,
    pub max_file_size: u64,
    /// A batch closes when it holds this many bytes...
    pub batch_bytes: usize,
    /// ...or this many files.
    pub batch_files: usize,
    pub baseline: Option<Baseline>,
    /// Redact secrets in snippets and messages (on by default; `--no-redact` turns it off).
    pub redact: bool,
    /// Failed invocations after which a plugin is stopped for the rest of the scan.
    pub max_plugin_failures: u64,
    /// Paths to leave out (gitignore-style globs relative to the target).
    pub exclude: Vec<String>,
    /// Honour `.gitignore`, `.ignore` and `.secflowignore`.
    pub respect_ignore_files: bool,
    /// Source lines kept before and after each finding (`location.context`); 0 keeps none.
    /// The HTML report asks for 3.
    pub context_lines: u32,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_file_size: 10 << 20,
            batch_bytes: 2 << 20,
            batch_files: 256,
            baseline: None,
            redact: true,
            max_plugin_failures: 8,
            exclude: Vec::new(),
            respect_ignore_files: true,
            context_lines: 0,
        }
    }
}

/// Receives progress while files are scanned (the CLI draws a progress bar).
pub trait Progress: Send + Sync {
    fn scanned(&self, files: u64, bytes: u64);
}

/// A progress sink that ignores everything.
#[derive(Debug)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn scanned(&self, _files: u64, _bytes: u64) {}
}

/// Why a scan could not run at all (plugin failures never end up here).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot scan {path}: {message}")]
    Target { path: PathBuf, message: String },
    #[error("plugin {plugin} cannot take part in a scan: {message}")]
    Plugin { plugin: String, message: String },
}

/// A file of a batch; log files also go to log analyzers.
struct Batch {
    files: Arc<Vec<b::FileInput>>,
    logs: Vec<usize>,
}

/// Results gathered by the workers.
#[derive(Default)]
struct Collected {
    findings: Vec<(Finding, String)>,
    rules: BTreeMap<String, RuleInfo>,
    errors: Vec<PluginFailure>,
    suppressed_inline: usize,
}

struct PluginSlot {
    sp: ScanPlugin,
    stats: Mutex<PluginStats>,
    failures: AtomicU64,
}

impl PluginSlot {
    fn new(sp: &ScanPlugin) -> PluginSlot {
        let m = &sp.plugin.manifest;
        PluginSlot {
            stats: Mutex::new(PluginStats {
                id: m.id.to_string(),
                version: m.version.to_string(),
                kind: m.kind.to_string(),
                digest: sp.plugin.digest.clone(),
                origin: sp.origin.clone(),
                ..PluginStats::default()
            }),
            sp: sp.clone(),
            failures: AtomicU64::new(0),
        }
    }

    fn id(&self) -> String {
        self.sp.plugin.manifest.id.to_string()
    }

    fn stopped(&self, max: u64) -> bool {
        self.failures.load(Ordering::Relaxed) >= max
    }

    fn account(&self, inv: &Invocation, files: u64) {
        let mut s = self.stats.lock().unwrap();
        s.invocations += 1;
        s.files += files;
        s.time_ms += inv.report.wall_time_us as f64 / 1000.0;
        s.peak_memory_bytes = s.peak_memory_bytes.max(inv.report.peak_memory_bytes);
    }

    /// Records a failure of an invocation; returns the failure to report.
    fn fail_with(&self, file: Option<&str>, e: &InvokeError, max: u64) -> PluginFailure {
        self.fail(file, e.kind(), e.to_string(), e.is_violation(), max)
    }

    /// Records a failure; returns the failure to report.
    fn fail(
        &self,
        file: Option<&str>,
        kind: &str,
        message: String,
        violation: bool,
        max: u64,
    ) -> PluginFailure {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut s = self.stats.lock().unwrap();
        s.errors += 1;
        if n == max {
            s.stopped = Some(format!("stopped after {max} failed invocations"));
        }
        PluginFailure {
            plugin: self.id(),
            file: file.map(str::to_string),
            kind: kind.to_string(),
            message,
            violation,
        }
    }
}

/// Runs the whole pipeline over `root`.
pub async fn scan(
    runtime: &Runtime,
    root: &Path,
    plugins: &[ScanPlugin],
    opts: &ScanOptions,
    progress: Arc<dyn Progress>,
) -> Result<ScanReport, ScanError> {
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let meta = std::fs::metadata(root).map_err(|e| ScanError::Target {
        path: root.to_path_buf(),
        message: format!("{e}; check the path"),
    })?;
    if !meta.is_dir() && !meta.is_file() {
        return Err(ScanError::Target {
            path: root.to_path_buf(),
            message: "not a file or directory".into(),
        });
    }
    let slots: Vec<Arc<PluginSlot>> = plugins
        .iter()
        .map(|p| Arc::new(PluginSlot::new(p)))
        .collect();
    let of_kind = |kind: PluginKind| -> Vec<Arc<PluginSlot>> {
        slots
            .iter()
            .filter(|s| s.sp.plugin.manifest.kind == kind)
            .cloned()
            .collect()
    };
    let detectors = Arc::new(of_kind(PluginKind::Detector));
    let log_analyzers = Arc::new(of_kind(PluginKind::LogAnalyzer));
    let enrichers = of_kind(PluginKind::Enricher);
    let analytics = of_kind(PluginKind::Analytics);

    // The walker reads files on its own thread and hands batches over a bounded channel, so
    // at most `2 * jobs` batches wait in memory besides the `jobs` being scanned.
    let jobs = opts.jobs.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(jobs * 2);
    let skipped: Arc<Mutex<Vec<SkippedFile>>> = Arc::default();
    let skipped_counts: Arc<Mutex<BTreeMap<walk::SkipReason, u64>>> = Arc::default();
    let walker = {
        let root = root.to_path_buf();
        let walk_opts = walk::WalkOptions {
            max_file_size: opts.max_file_size,
            exclude: opts.exclude.clone(),
            respect_ignore_files: opts.respect_ignore_files,
        };
        let (batch_bytes, batch_files) = (opts.batch_bytes, opts.batch_files);
        let skipped = skipped.clone();
        let skipped_counts = skipped_counts.clone();
        std::thread::spawn(move || {
            let mut files = Vec::new();
            let mut logs = Vec::new();
            let mut bytes = 0usize;
            let send = |files: &mut Vec<b::FileInput>, logs: &mut Vec<usize>| {
                let batch = Batch {
                    files: Arc::new(std::mem::take(files)),
                    logs: std::mem::take(logs),
                };
                tx.blocking_send(batch).is_ok()
            };
            let mut open = true;
            let totals = walk::walk(&root, &walk_opts, |item| {
                match item {
                    Walked::Skipped {
                        path,
                        reason,
                        detail,
                    } => {
                        *skipped_counts.lock().unwrap().entry(reason).or_default() += 1;
                        let mut list = skipped.lock().unwrap();
                        if list.len() < MAX_SKIPPED_LISTED {
                            list.push(SkippedFile {
                                path,
                                reason,
                                detail,
                            });
                        }
                    }
                    Walked::File { path, content } => {
                        if walk::is_log_file(&path) {
                            logs.push(files.len());
                        }
                        bytes += content.len();
                        files.push(b::FileInput { path, content });
                        if bytes >= batch_bytes || files.len() >= batch_files {
                            open = send(&mut files, &mut logs);
                            bytes = 0;
                        }
                    }
                }
                open
            });
            if open && !files.is_empty() {
                send(&mut files, &mut logs);
            }
            totals
        })
    };

    let collected: Arc<Mutex<Collected>> = Arc::default();
    let scanned = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..jobs {
        let rx = rx.clone();
        let runtime = runtime.clone();
        let detectors = detectors.clone();
        let log_analyzers = log_analyzers.clone();
        let collected = collected.clone();
        let scanned = scanned.clone();
        let progress = progress.clone();
        let max_failures = opts.max_plugin_failures;
        let context_lines = opts.context_lines;
        workers.spawn(async move {
            // One detector instance per plugin for this worker's batches of this scan.
            let mut sessions: Vec<Option<DetectSession>> = detectors.iter().map(|_| None).collect();
            loop {
                let Some(batch) = rx.lock().await.recv().await else {
                    break;
                };
                let mut local = Collected::default();
                for (det, session) in detectors.iter().zip(sessions.iter_mut()) {
                    if det.stopped(max_failures) {
                        continue;
                    }
                    run_detector_session(
                        &runtime,
                        det,
                        session,
                        &batch.files,
                        max_failures,
                        &mut local,
                    )
                    .await;
                }
                for &i in &batch.logs {
                    let file = &batch.files[i];
                    for la in log_analyzers.iter() {
                        if la.stopped(max_failures) {
                            continue;
                        }
                        run_log_analyzer(&runtime, la, file, max_failures, &mut local).await;
                    }
                }
                if context_lines > 0 {
                    add_context(&mut local.findings, &batch.files, context_lines);
                }
                let bytes: u64 = batch.files.iter().map(|f| f.content.len() as u64).sum();
                let files = scanned
                    .0
                    .fetch_add(batch.files.len() as u64, Ordering::Relaxed)
                    + batch.files.len() as u64;
                let total = scanned.1.fetch_add(bytes, Ordering::Relaxed) + bytes;
                progress.scanned(files, total);
                let mut all = collected.lock().unwrap();
                all.findings.append(&mut local.findings);
                all.errors.append(&mut local.errors);
                all.suppressed_inline += local.suppressed_inline;
                for (id, rule) in local.rules {
                    all.rules.entry(id).or_insert(rule);
                }
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            // A worker panicking is a host bug; report it rather than hide it.
            collected.lock().unwrap().errors.push(PluginFailure {
                plugin: "secflow".into(),
                file: None,
                kind: "host".into(),
                message: format!("scan worker failed: {e}"),
                violation: false,
            });
        }
    }
    let walk_totals = walker.join().unwrap_or_default();

    let mut collected = std::mem::take(&mut *collected.lock().unwrap());
    let mut findings = fingerprint::assign_and_dedup(std::mem::take(&mut collected.findings));

    // Baseline: known findings are not reported (nor enriched, nor counted by analytics).
    let mut suppressed_baseline = 0;
    if let Some(baseline) = &opts.baseline {
        let known = baseline.fingerprints();
        findings.retain(|f| {
            let keep = !known.contains(f.fingerprint.as_str());
            suppressed_baseline += usize::from(!keep);
            keep
        });
    }

    for enricher in &enrichers {
        findings = run_enricher(runtime, enricher, findings, &mut collected).await;
    }
    let mut analytics_results = Vec::new();
    for a in &analytics {
        if let Some(result) = run_analytics(runtime, a, &findings, &mut collected).await {
            analytics_results.push(result);
        }
    }

    // Everything the report carries from plugins, redacted by the host whatever the plugins
    // did: findings (snippet, message, title, tags, properties), failures' messages (they
    // also become audit log reasons), analytics text and labels, and rule help (below).
    let redactor = opts.redact.then(redact::Redactor::new);
    if let Some(r) = &redactor {
        for f in &mut findings {
            r.redact_finding(f);
        }
        redact::mask_credential_lines_in_context(&mut findings);
        for e in &mut collected.errors {
            e.message = r.redact(&e.message);
        }
        for a in &mut analytics_results {
            a.summary_markdown = r.redact(&a.summary_markdown);
            for m in &mut a.metrics {
                for v in m.labels.values_mut() {
                    *v = r.redact(v);
                }
            }
        }
    }
    sort_findings(&mut findings);

    let mut by_severity: BTreeMap<Severity, usize> =
        Severity::ALL.iter().map(|s| (*s, 0)).collect();
    for f in &findings {
        *by_severity.entry(f.severity).or_default() += 1;
    }
    let mut rules: Vec<RuleInfo> = collected
        .rules
        .into_values()
        .filter(|r| findings.iter().any(|f| f.rule_id == r.id))
        .collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(r) = &redactor {
        for rule in &mut rules {
            rule.title = r.redact(&rule.title);
            rule.description = r.redact(&rule.description);
            rule.help = r.redact(&rule.help);
        }
    }
    let plugin_stats: Vec<PluginStats> = slots
        .iter()
        .map(|s| {
            let mut st = s.stats.lock().unwrap().clone();
            st.findings = findings.iter().filter(|f| f.plugin == st.id).count() as u64;
            st
        })
        .collect();
    let files_skipped = std::mem::take(&mut *skipped_counts.lock().unwrap());
    // Nothing silently unscanned: a file or directory that could not be read leaves the
    // scan partial, as a failed plugin does.
    let partial = !collected.errors.is_empty()
        || files_skipped
            .get(&walk::SkipReason::Unreadable)
            .is_some_and(|n| *n > 0);
    let summary = Summary {
        findings: findings.len(),
        by_severity,
        files_scanned: scanned.0.load(Ordering::Relaxed),
        bytes_scanned: scanned.1.load(Ordering::Relaxed),
        files_skipped,
        files_ignored: walk_totals.ignored,
        suppressed_inline: collected.suppressed_inline,
        suppressed_baseline,
    };
    Ok(ScanReport {
        schema_version: REPORT_SCHEMA_VERSION,
        tool: ToolInfo {
            name: "secflow",
            version: env!("CARGO_PKG_VERSION"),
        },
        target: root.display().to_string(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        partial,
        summary,
        findings,
        rules,
        plugins: plugin_stats,
        errors: collected.errors,
        skipped: std::mem::take(&mut *skipped.lock().unwrap()),
        analytics: analytics_results,
        source_root: crate::report::SourceRoot::find(root),
    })
}

/// Runs one detector over a batch in this worker's session (opened on first use); when the
/// call fails the session is dropped and the batch retried file by file in fresh instances,
/// so only the file that broke it loses this plugin's results.
async fn run_detector_session(
    runtime: &Runtime,
    det: &PluginSlot,
    session: &mut Option<DetectSession>,
    files: &Arc<Vec<b::FileInput>>,
    max_failures: u64,
    out: &mut Collected,
) {
    if session.is_none() {
        match runtime
            .detect_session(det.sp.plugin.clone(), &det.sp.config)
            .await
        {
            Ok(s) => *session = Some(s),
            Err(inv) => {
                det.account(&inv, 0);
                let e = inv.outcome.err().map_or_else(
                    || {
                        (
                            "host".to_string(),
                            "the plugin could not start".to_string(),
                            false,
                        )
                    },
                    |e| (e.kind().to_string(), e.to_string(), e.is_violation()),
                );
                out.errors
                    .push(det.fail(None, &e.0, format!("init: {}", e.1), e.2, max_failures));
                return;
            }
        }
    }
    let Some(open) = session.as_mut() else {
        return;
    };
    let inv = open.detect(files.clone()).await;
    if !open.usable() {
        *session = None;
    }
    det.account(&inv, files.len() as u64);
    match detected(det, files, inv, max_failures, out) {
        Some(()) => {}
        // The batch failed as a whole: find the file that broke it, each in a fresh instance.
        None => {
            for file in files.iter() {
                if det.stopped(max_failures) {
                    break;
                }
                let one = Arc::new(vec![file.clone()]);
                let inv = runtime
                    .invoke(
                        &det.sp.plugin,
                        Call::DetectBatch(one.clone()),
                        &det.sp.config,
                    )
                    .await;
                det.account(&inv, 1);
                let _ = detected(det, &one, inv, max_failures, out);
            }
        }
    }
}

/// Takes the findings of a detector call. A failure of a one-file call is that file's
/// error; a failure of a larger batch returns `None` for the caller to narrow down.
fn detected(
    det: &PluginSlot,
    files: &[b::FileInput],
    inv: Invocation,
    max_failures: u64,
    out: &mut Collected,
) -> Option<()> {
    match inv.outcome {
        Ok(Output::BatchFindings(results)) => {
            for (file, result) in files.iter().zip(results) {
                match result {
                    Ok(found) => accept_findings(det, file, found, out),
                    Err(e) => out.errors.push(det.fail(
                        Some(&file.path),
                        "plugin-error",
                        plugin_error_text(&e),
                        false,
                        max_failures,
                    )),
                }
            }
        }
        Ok(_) => out.errors.push(det.fail(
            None,
            "invalid-output",
            "the detector returned something other than findings".into(),
            true,
            max_failures,
        )),
        Err(e) if files.len() == 1 => {
            out.errors
                .push(det.fail_with(Some(&files[0].path), &e, max_failures))
        }
        Err(_) => return None,
    }
    Some(())
}

fn plugin_error_text(e: &b::PluginError) -> String {
    match e {
        b::PluginError::InvalidInput(m) => format!("invalid input: {m}"),
        b::PluginError::InvalidConfig(m) => format!("invalid config: {m}"),
        b::PluginError::Denied(m) => format!("denied: {m}"),
        b::PluginError::Failed(m) => m.clone(),
    }
}

/// Binds findings to the file they came from, applies inline suppressions and keeps the
/// normalized source text that identifies them.
fn accept_findings(
    slot: &PluginSlot,
    file: &b::FileInput,
    found: Vec<b::Finding>,
    out: &mut Collected,
) {
    if found.is_empty() {
        return;
    }
    let plugin = slot.id();
    let lines: Vec<&[u8]> = file.content.split(|&c| c == b'\n').collect();
    for wit in found {
        let (mut finding, rule) = Finding::from_wit(wit, &plugin);
        // A detector reports on the file it was given, never on another path.
        let loc = finding.location.get_or_insert_with(Default::default);
        loc.path = file.path.clone();
        let line_text = (loc.start_line as usize)
            .checked_sub(1)
            .and_then(|i| lines.get(i))
            .map(|l| String::from_utf8_lossy(l).trim().to_string());
        if is_suppressed_in(&lines, loc.start_line, &finding.rule_id) {
            out.suppressed_inline += 1;
            continue;
        }
        if loc.snippet.is_none() {
            loc.snippet = line_text.as_ref().map(|t| truncate_chars(t, 200));
        }
        let identity = normalize_snippet(
            loc.snippet
                .as_deref()
                .or(line_text.as_deref())
                .unwrap_or(""),
        );
        out.rules.entry(rule.id.clone()).or_insert(rule);
        out.findings.push((finding, identity));
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Parses a log file into entries: 1-based line numbers and, when the line starts with a
/// syslog (`Nov 21 03:14:07`) or ISO 8601 timestamp, that timestamp.
pub fn parse_log(content: &[u8]) -> Vec<b::LogEntry> {
    content
        .split(|&c| c == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, raw)| {
            let text = String::from_utf8_lossy(raw);
            let text = text.trim_end_matches('\r');
            let (timestamp, message) = split_timestamp(text);
            b::LogEntry {
                line: i as u64 + 1,
                timestamp: timestamp.map(str::to_string),
                message: message.to_string(),
            }
        })
        .collect()
}

fn split_timestamp(line: &str) -> (Option<&str>, &str) {
    let bytes = line.as_bytes();
    // Syslog: "Mmm dd hh:mm:ss ".
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if bytes.len() > 16
        && MONTHS.iter().any(|m| line.starts_with(m))
        && bytes[3] == b' '
        && bytes[9] == b':'
        && bytes[12] == b':'
        && bytes[15] == b' '
    {
        return (Some(&line[..15]), &line[16..]);
    }
    // ISO 8601: "YYYY-MM-DD[T ]hh:mm:ss..." up to the first space after the time.
    if bytes.len() > 19
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && (bytes[10] == b'T' || bytes[10] == b' ')
        && bytes[..4].iter().all(u8::is_ascii_digit)
    {
        let end = line[11..].find(' ').map_or(line.len(), |i| i + 11);
        return (Some(&line[..end]), line[end..].trim_start());
    }
    (None, line)
}

async fn run_log_analyzer(
    runtime: &Runtime,
    la: &PluginSlot,
    file: &b::FileInput,
    max_failures: u64,
    out: &mut Collected,
) {
    let entries = parse_log(&file.content);
    let inv = runtime
        .invoke(
            &la.sp.plugin,
            Call::AnalyzeLogs {
                source: file.path.clone(),
                entries,
            },
            &la.sp.config,
        )
        .await;
    la.account(&inv, 1);
    match inv.outcome {
        Ok(Output::Findings(found)) => accept_findings(la, file, found, out),
        Ok(_) => out.errors.push(la.fail(
            Some(&file.path),
            "invalid-output",
            "the log analyzer returned something other than findings".into(),
            true,
            max_failures,
        )),
        Err(e) => out
            .errors
            .push(la.fail_with(Some(&file.path), &e, max_failures)),
    }
}

/// Findings per enricher call, so a large scan stays under the plugin's output limit.
const ENRICH_CHUNK: usize = 500;

/// Runs an enricher over the findings in chunks. An enricher may only add enrichment to
/// the findings it was given: [`reconcile`] checks each chunk it returns, and a chunk that
/// drops, adds, moves, renames or otherwise rewrites a finding is discarded whole (the
/// findings pass through unchanged) and reported as a violation. So an enricher can neither
/// hide a finding from `--fail-on` nor plant one.
async fn run_enricher(
    runtime: &Runtime,
    slot: &PluginSlot,
    findings: Vec<Finding>,
    out: &mut Collected,
) -> Vec<Finding> {
    // SecFlow's own enrichers (bundled, pinned) may also lower a severity (the CVSS enricher
    // sets it from the vector) and rewrite the properties they own; any other enricher may
    // only add.
    let trusted = slot.sp.origin == "bundled";
    let mut result = Vec::with_capacity(findings.len());
    for chunk in findings.chunks(ENRICH_CHUNK) {
        let inv = runtime
            .invoke(
                &slot.sp.plugin,
                Call::Enrich(chunk.iter().map(Finding::to_wit).collect()),
                &slot.sp.config,
            )
            .await;
        slot.account(&inv, 0);
        match inv.outcome {
            Ok(Output::Findings(enriched)) => match reconcile(chunk, enriched, trusted) {
                Ok(kept) => result.extend(kept),
                Err(problem) => {
                    out.errors.push(slot.fail(
                        None,
                        "invalid-output",
                        format!(
                            "the enricher may only add to the findings it is given, but it \
                             {problem}; its changes to {} finding(s) were discarded",
                            chunk.len()
                        ),
                        true,
                        u64::MAX,
                    ));
                    result.extend_from_slice(chunk);
                }
            },
            Ok(_) => {
                out.errors.push(slot.fail(
                    None,
                    "invalid-output",
                    "the enricher returned something other than findings".into(),
                    true,
                    u64::MAX,
                ));
                result.extend_from_slice(chunk);
            }
            Err(e) => {
                out.errors.push(slot.fail_with(None, &e, u64::MAX));
                result.extend_from_slice(chunk);
            }
        }
    }
    result
}

/// Matches an enricher's answer to the chunk it was given, one to one by fingerprint, and
/// keeps only enrichment: CWE and CVE ids, tags and properties may be added, a CVSS vector
/// set where there was none, the severity raised. The identity (rule, title, message,
/// confidence), the location and the reporting plugin must not change, and nothing may be
/// dropped or added. A `trusted` (bundled) enricher may also lower a severity, replace a
/// CVSS vector and rewrite or remove properties. Returns what is wrong otherwise.
pub fn reconcile(
    chunk: &[Finding],
    enriched: Vec<b::Finding>,
    trusted: bool,
) -> Result<Vec<Finding>, String> {
    if enriched.len() != chunk.len() {
        return Err(format!(
            "returned {} finding(s) for the {} it was given",
            enriched.len(),
            chunk.len()
        ));
    }
    let by_fp: HashMap<&str, &Finding> =
        chunk.iter().map(|f| (f.fingerprint.as_str(), f)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut kept = Vec::with_capacity(chunk.len());
    for wit in enriched {
        let supplied = wit.fingerprint.clone().unwrap_or_default();
        let Some(original) = by_fp.get(supplied.as_str()) else {
            return Err(format!(
                "returned a finding it was not given (rule `{}`)",
                wit.rule_id
            ));
        };
        if !seen.insert(supplied.clone()) {
            return Err(format!("returned the `{}` finding twice", original.rule_id));
        }
        let (mut f, _rule) = Finding::from_wit(wit, &original.plugin);
        // The context is the host's, not part of what plugins see: carried over.
        if let (Some(location), Some(before)) = (f.location.as_mut(), original.location.as_ref()) {
            location.context = before.context.clone();
        }
        let rule = &original.rule_id;
        let unchanged = [
            ("rule id", f.rule_id == original.rule_id),
            ("title", f.title == original.title),
            ("message", f.message == original.message),
            ("confidence", f.confidence == original.confidence),
            ("location", f.location == original.location),
        ];
        if let Some((what, _)) = unchanged.iter().find(|(_, same)| !same) {
            return Err(format!("changed the {what} of a `{rule}` finding"));
        }
        let kept_all = |old: &[String], new: &[String]| old.iter().all(|o| new.contains(o));
        if !original.cwe_ids.iter().all(|c| f.cwe_ids.contains(c))
            || !kept_all(&original.cve_ids, &f.cve_ids)
            || !kept_all(&original.tags, &f.tags)
        {
            return Err(format!(
                "removed CWE ids, CVE ids or tags from a `{rule}` finding"
            ));
        }
        if f.severity < original.severity && !trusted {
            return Err(format!(
                "lowered a `{rule}` finding from {} to {}",
                original.severity, f.severity
            ));
        }
        if !trusted {
            if let Some((key, _)) = original
                .properties
                .iter()
                .find(|(k, v)| f.properties.get(*k) != Some(*v))
            {
                return Err(format!(
                    "changed or removed the property `{key}` of a `{rule}` finding"
                ));
            }
            if original.cvss_vector.is_some() && f.cvss_vector != original.cvss_vector {
                return Err(format!("replaced the CVSS vector of a `{rule}` finding"));
            }
        }
        f.plugin = original.plugin.clone();
        f.fingerprint = original.fingerprint.clone();
        kept.push(f);
    }
    Ok(kept)
}

async fn run_analytics(
    runtime: &Runtime,
    slot: &PluginSlot,
    findings: &[Finding],
    out: &mut Collected,
) -> Option<AnalyticsResult> {
    let inv = runtime
        .invoke(
            &slot.sp.plugin,
            Call::Analyze(findings.iter().map(Finding::to_wit).collect()),
            &slot.sp.config,
        )
        .await;
    slot.account(&inv, 0);
    match inv.outcome {
        Ok(Output::Report(report)) => Some(AnalyticsResult {
            plugin: slot.id(),
            summary_markdown: report.summary_markdown,
            metrics: report
                .metrics
                .into_iter()
                .map(|m| MetricValue {
                    name: m.name,
                    value: m.value,
                    labels: m.labels.into_iter().collect(),
                })
                .collect(),
        }),
        Ok(_) => {
            out.errors.push(slot.fail(
                None,
                "invalid-output",
                "the analytics plugin returned something other than a report".into(),
                true,
                u64::MAX,
            ));
            None
        }
        Err(e) => {
            out.errors.push(slot.fail_with(None, &e, u64::MAX));
            None
        }
    }
}

/// Fills `location.context` of the batch's findings from the files' contents while they are
/// in memory (line starts computed once per file with findings).
fn add_context(findings: &mut [(Finding, String)], files: &[b::FileInput], around: u32) {
    let by_path: BTreeMap<&str, &b::FileInput> =
        files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut starts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (finding, _) in findings.iter_mut() {
        let Some(location) = finding.location.as_mut() else {
            continue;
        };
        let Some(file) = by_path.get(location.path.as_str()) else {
            continue;
        };
        let line_starts = starts
            .entry(file.path.as_str())
            .or_insert_with(|| crate::model::line_starts(&file.content));
        location.context = crate::model::Context::from_content(
            &file.content,
            line_starts,
            location.start_line,
            location.end_line,
            around,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding_with_cvss() -> Finding {
        Finding {
            rule_id: "r".into(),
            title: "t".into(),
            message: "m".into(),
            severity: Severity::High,
            confidence: crate::model::Confidence::High,
            cwe_ids: vec![],
            cve_ids: vec![],
            cvss_vector: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into()),
            location: None,
            fingerprint: "fp".into(),
            plugin: "p".into(),
            tags: vec![],
            properties: [("cvss.score".to_string(), "9.8".to_string())].into(),
        }
    }

    #[test]
    fn an_untrusted_enricher_may_set_but_not_replace_a_cvss_vector_or_a_property() {
        let original = finding_with_cvss();
        let mut replaced = original.to_wit();
        replaced.cvss_vector = Some("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N".into());
        let err = reconcile(
            std::slice::from_ref(&original),
            vec![replaced.clone()],
            false,
        )
        .unwrap_err();
        assert!(err.contains("replaced the CVSS vector"), "{err}");
        assert!(reconcile(std::slice::from_ref(&original), vec![replaced], true).is_ok());

        let mut rescored = original.to_wit();
        rescored.properties = vec![("cvss.score".into(), "0.1".into())];
        let err = reconcile(std::slice::from_ref(&original), vec![rescored], false).unwrap_err();
        assert!(err.contains("property `cvss.score`"), "{err}");

        let mut added = original.to_wit();
        added.properties.push(("epss.score".into(), "0.97".into()));
        let kept = reconcile(std::slice::from_ref(&original), vec![added], false).unwrap();
        assert_eq!(kept[0].properties["epss.score"], "0.97");
        assert_eq!(kept[0].properties["cvss.score"], "9.8");
    }

    #[test]
    fn log_timestamps() {
        let entries = parse_log(
            b"Nov 21 03:14:07 gw sshd[1]: Failed password\n\n2026-11-21T03:14:07Z host app: x\nplain\r\n",
        );
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].line, 1);
        assert_eq!(entries[0].timestamp.as_deref(), Some("Nov 21 03:14:07"));
        assert_eq!(entries[0].message, "gw sshd[1]: Failed password");
        assert_eq!(entries[1].line, 3);
        assert_eq!(
            entries[1].timestamp.as_deref(),
            Some("2026-11-21T03:14:07Z")
        );
        assert_eq!(entries[1].message, "host app: x");
        assert_eq!(entries[2].timestamp, None);
        assert_eq!(entries[2].message, "plain");
    }
}
