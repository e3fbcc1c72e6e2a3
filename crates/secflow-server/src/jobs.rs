//! Scan jobs: a bounded queue in SQLite (`server/jobs.db` in the state directory) that
//! survives a restart. A job is a target (an uploaded archive, unpacked safely, or a path
//! under an allow-listed root) and options; workers run it through the host's `scan`
//! operation, as the CLI does, and keep the JSON, SARIF and HTML reports. Jobs a crash or a
//! kill interrupted are queued again when the server starts; finished results are kept.

use crate::metrics::Metrics;
use crate::problem::Problem;
use secflow_host::Host;
use secflow_scan::output::{self, Format};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use utoipa::ToSchema;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    options TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    error TEXT,
    summary TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
";

/// What a scan job runs with: a subset of `secflow scan`'s options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ScanJobOptions {
    /// Only these plugins (empty: every available one).
    pub plugins: Vec<String>,
    /// Leave these plugins out.
    pub exclude_plugins: Vec<String>,
    /// Paths to leave out (gitignore globs relative to the target).
    pub exclude: Vec<String>,
    /// Scan files that ignore files leave out.
    pub no_ignore: bool,
}

/// A scan job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobInfo {
    pub id: String,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// `upload` or the server-side path.
    pub source: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub progress: Progress,
    /// Findings and counts once done.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
    pub options: ScanJobOptions,
}

/// How far a running job is.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct Progress {
    pub files: u64,
    pub bytes: u64,
}

/// Where a job's target comes from.
#[derive(Debug)]
pub enum Target {
    /// An archive's bytes (unpacked before the job is queued).
    Upload(bytes::Bytes),
    /// A directory or file on the server, under an allow-listed root.
    Path(PathBuf),
}

struct Running {
    cancel: Arc<tokio::sync::Notify>,
    progress: Arc<(AtomicU64, AtomicU64)>,
}

struct Inner {
    host: Host,
    pool: SqlitePool,
    dir: PathBuf,
    capacity: usize,
    scan_roots: Vec<PathBuf>,
    archive: crate::archive::Limits,
    metrics: Metrics,
    wake: tokio::sync::Notify,
    running: Mutex<HashMap<String, Running>>,
    stopping: AtomicBool,
}

/// The job queue. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// How long a job directory without a job must have been left alone before a starting
/// server removes it.
const ORPHAN_AGE: Duration = Duration::from_secs(600);

/// Handles of the worker tasks, for [`Jobs::stop`].
#[derive(Debug)]
pub struct Workers(Vec<tokio::task::JoinHandle<()>>);

impl Jobs {
    /// Opens the queue and puts jobs that were running when the server stopped back in it.
    pub async fn open(
        host: Host,
        config: &crate::ServerConfig,
        metrics: Metrics,
    ) -> anyhow::Result<Jobs> {
        let dir = host.paths().root.join("server");
        std::fs::create_dir_all(dir.join("jobs"))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("jobs.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        let requeued = sqlx::query(
            "UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'",
        )
        .execute(&pool)
        .await?
        .rows_affected();
        if requeued > 0 {
            tracing::info!(requeued, "scan jobs interrupted by a stop are queued again");
        }
        let jobs = Jobs {
            inner: Arc::new(Inner {
                host,
                pool,
                dir,
                capacity: config.queue_capacity.max(1),
                scan_roots: config
                    .scan_roots
                    .iter()
                    .filter_map(|r| r.canonicalize().ok())
                    .collect(),
                archive: config.archive,
                metrics,
                wake: tokio::sync::Notify::new(),
                running: Mutex::new(HashMap::new()),
                stopping: AtomicBool::new(false),
            }),
        };
        jobs.update_depth().await;
        jobs.remove_orphans(ORPHAN_AGE).await?;
        Ok(jobs)
    }

    /// Removes job directories without a job: an upload is unpacked before its job is
    /// recorded, so a server killed while unpacking leaves one behind. Only directories
    /// untouched for `age` go: another server on the same state directory may be unpacking
    /// into a fresh one right now.
    async fn remove_orphans(&self, age: Duration) -> anyhow::Result<()> {
        let root = self.inner.dir.join("jobs");
        let known: std::collections::HashSet<String> = sqlx::query_scalar("SELECT id FROM jobs")
            .fetch_all(&self.inner.pool)
            .await?
            .into_iter()
            .collect();
        let mut removed = 0u64;
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|elapsed| elapsed >= age);
            if !old || known.contains(&id) {
                continue;
            }
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(dir = %entry.path().display(), error = %e, "cannot remove an orphaned job directory")
                }
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                "removed job directories left without a job (an interrupted upload)"
            );
        }
        Ok(())
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.inner.dir.join("jobs").join(id)
    }

    async fn depth(&self) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
            .fetch_one(&self.inner.pool)
            .await
            .map(|r| r.get::<i64, _>(0))
    }

    async fn update_depth(&self) {
        if let Ok(depth) = self.depth().await {
            self.inner.metrics.set_queue_depth(depth);
        }
    }

    /// Queues a job. Refused with 503 when the queue is full, 400/422 for a bad target.
    pub async fn submit(
        &self,
        actor: &str,
        target: Target,
        options: ScanJobOptions,
    ) -> Result<JobInfo, Problem> {
        if self.depth().await.map_err(internal)? >= self.inner.capacity as i64 {
            self.inner.metrics.denied("busy");
            return Err(Problem::busy(
                format!(
                    "the scan queue is full ({} jobs); retry later",
                    self.inner.capacity
                ),
                30,
            ));
        }
        let id = new_id();
        let job_dir = self.job_dir(&id);
        let (source, target_path) = match target {
            Target::Path(path) => {
                let resolved = path.canonicalize().map_err(|e| {
                    Problem::bad_request(format!("cannot scan {}: {e}", path.display()))
                })?;
                if !self
                    .inner
                    .scan_roots
                    .iter()
                    .any(|root| resolved.starts_with(root))
                {
                    return Err(Problem::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "path-not-allowed",
                        "Path not allowed",
                        format!(
                            "{} is not under a directory the administrator allows (secflow serve --scan-root DIR); upload an archive instead",
                            path.display()
                        ),
                    ));
                }
                (resolved.display().to_string(), resolved)
            }
            Target::Upload(bytes) => {
                let target = job_dir.join("target");
                std::fs::create_dir_all(&target).map_err(internal)?;
                let limits = self.inner.archive;
                let unpack_into = target.clone();
                let result = tokio::task::spawn_blocking(move || {
                    crate::archive::unpack(&bytes, &unpack_into, limits)
                })
                .await
                .map_err(internal)?;
                if let Err(e) = result {
                    let _ = std::fs::remove_dir_all(&job_dir);
                    return Err(match e {
                        crate::archive::ArchiveError::Io(io) => internal(io),
                        crate::archive::ArchiveError::UnknownFormat => {
                            Problem::unsupported_media(format!(
                                "{e}; send application/gzip (.tar.gz), application/x-tar or application/zip"
                            ))
                        }
                        crate::archive::ArchiveError::TooLarge(_)
                        | crate::archive::ArchiveError::FileTooLarge(..)
                        | crate::archive::ArchiveError::TooManyEntries(_) => {
                            Problem::too_large(e.to_string())
                        }
                        other => Problem::new(
                            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                            "bad-archive",
                            "Archive refused",
                            other.to_string(),
                        ),
                    });
                }
                ("upload".to_string(), target)
            }
        };
        let now = now();
        sqlx::query(
            "INSERT INTO jobs (id, state, actor, source, target, options, created_at) VALUES (?, 'queued', ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(actor)
        .bind(&source)
        .bind(target_path.display().to_string())
        .bind(serde_json::to_string(&options).unwrap_or_default())
        .bind(&now)
        .execute(&self.inner.pool)
        .await
        .map_err(internal)?;
        self.update_depth().await;
        self.inner.wake.notify_one();
        self.get(&id).await?.ok_or_else(Problem::internal)
    }

    /// One job, or `None`.
    pub async fn get(&self, id: &str) -> Result<Option<JobInfo>, Problem> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(internal)?;
        Ok(row.map(|r| self.info(&r)))
    }

    /// Jobs, newest first.
    pub async fn list(&self, limit: i64, offset: i64) -> Result<Vec<JobInfo>, Problem> {
        let rows = sqlx::query("SELECT * FROM jobs ORDER BY seq DESC LIMIT ? OFFSET ?")
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(internal)?;
        Ok(rows.iter().map(|r| self.info(r)).collect())
    }

    fn info(&self, r: &sqlx::sqlite::SqliteRow) -> JobInfo {
        let id: String = r.get("id");
        let progress = self
            .inner
            .running
            .lock()
            .expect("running jobs")
            .get(&id)
            .map(|run| Progress {
                files: run.progress.0.load(Ordering::Relaxed),
                bytes: run.progress.1.load(Ordering::Relaxed),
            });
        let summary: Option<serde_json::Value> = r
            .get::<Option<String>, _>("summary")
            .and_then(|s| serde_json::from_str(&s).ok());
        let progress = progress.unwrap_or_else(|| Progress {
            files: summary
                .as_ref()
                .and_then(|s| s["files_scanned"].as_u64())
                .unwrap_or(0),
            bytes: summary
                .as_ref()
                .and_then(|s| s["bytes_scanned"].as_u64())
                .unwrap_or(0),
        });
        JobInfo {
            state: r.get("state"),
            source: r.get("source"),
            created_at: r.get("created_at"),
            started_at: r.get("started_at"),
            finished_at: r.get("finished_at"),
            progress,
            summary,
            error: r.get("error"),
            options: serde_json::from_str(&r.get::<String, _>("options")).unwrap_or_default(),
            id,
        }
    }

    /// A finished job's report in `format`, or `None` if the job is not done.
    pub async fn report(&self, id: &str, format: Format) -> Result<Option<Vec<u8>>, Problem> {
        let file = self.job_dir(id).join(report_name(format));
        match tokio::fs::read(&file).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(internal(e)),
        }
    }

    /// Cancels a queued or running job. Returns the job as it is now.
    pub async fn cancel(&self, id: &str) -> Result<Option<JobInfo>, Problem> {
        let changed = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state = 'queued'",
        )
        .bind(now())
        .bind(id)
        .execute(&self.inner.pool)
        .await
        .map_err(internal)?
        .rows_affected();
        if changed == 0
            && let Some(run) = self.inner.running.lock().expect("running jobs").get(id)
        {
            run.cancel.notify_one();
        }
        self.update_depth().await;
        self.get(id).await
    }

    /// Deletes a job that has ended (done, failed or cancelled) with its results. `Ok(None)`
    /// when there is no such job; a queued or running job is a 409 (cancel it first: a
    /// running scan's worker still writes to the job).
    pub async fn delete(&self, id: &str) -> Result<Option<JobInfo>, Problem> {
        let Some(job) = self.get(id).await? else {
            return Ok(None);
        };
        let deleted =
            sqlx::query("DELETE FROM jobs WHERE id = ? AND state NOT IN ('queued', 'running')")
                .bind(id)
                .execute(&self.inner.pool)
                .await
                .map_err(internal)?
                .rows_affected();
        if deleted == 0 {
            // Still active (or deleted by another request since it was read).
            let Some(job) = self.get(id).await? else {
                return Ok(None);
            };
            return Err(Problem::new(
                axum::http::StatusCode::CONFLICT,
                "not-finished",
                "Not finished",
                format!(
                    "scan job {id} is {}; cancel it first (POST /v1/scans/{id}/cancel), then delete it once it has ended",
                    job.state
                ),
            )
            .with("state", &job.state));
        }
        // The row is gone, so the job is; its files go with it (a failure here leaves only
        // unreachable files behind, named in the log).
        match tokio::fs::remove_dir_all(self.job_dir(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(job = id, error = %e, "cannot remove a deleted job's files"),
        }
        Ok(Some(job))
    }

    /// Starts `n` workers.
    pub fn start_workers(&self, n: usize) -> Workers {
        Workers(
            (0..n.max(1))
                .map(|_| {
                    let jobs = self.clone();
                    tokio::spawn(async move { jobs.work().await })
                })
                .collect(),
        )
    }

    /// Stops the workers; a running scan is cancelled and queued again for the next start.
    pub async fn stop(&self, workers: Workers) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.wake.notify_waiters();
        for handle in workers.0 {
            handle.abort();
            let _ = handle.await;
        }
        let _ = sqlx::query(
            "UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'",
        )
        .execute(&self.inner.pool)
        .await;
        self.inner.pool.close().await;
    }

    async fn claim(
        &self,
    ) -> Result<Option<(String, String, PathBuf, ScanJobOptions, String)>, sqlx::Error> {
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1) \
             RETURNING id, actor, target, options, source",
        )
        .bind(now())
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(row.map(|r| {
            (
                r.get("id"),
                r.get("actor"),
                PathBuf::from(r.get::<String, _>("target")),
                serde_json::from_str(&r.get::<String, _>("options")).unwrap_or_default(),
                r.get("source"),
            )
        }))
    }

    async fn work(&self) {
        loop {
            if self.inner.stopping.load(Ordering::SeqCst) {
                return;
            }
            let claimed = match self.claim().await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the scan queue");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some((id, actor, target, options, source)) = claimed else {
                // Woken by a submit, or look again now and then.
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), self.inner.wake.notified()).await;
                continue;
            };
            self.update_depth().await;
            self.run_job(&id, &actor, &target, options, &source).await;
            self.update_depth().await;
        }
    }

    async fn run_job(
        &self,
        id: &str,
        actor: &str,
        target: &Path,
        options: ScanJobOptions,
        source: &str,
    ) {
        let cancel = Arc::new(tokio::sync::Notify::new());
        let progress: Arc<(AtomicU64, AtomicU64)> = Arc::default();
        self.inner.running.lock().expect("running jobs").insert(
            id.to_string(),
            Running {
                cancel: cancel.clone(),
                progress: progress.clone(),
            },
        );
        let host = self.inner.host.acting_as(actor);
        let request = secflow_host::ScanRequest {
            target: target.to_path_buf(),
            only: options.plugins.clone(),
            exclude: options.exclude_plugins.clone(),
            options: secflow_scan::ScanOptions {
                exclude: options.exclude.clone(),
                respect_ignore_files: !options.no_ignore,
                context_lines: 3,
                ..secflow_scan::ScanOptions::default()
            },
            ..Default::default()
        };
        let sink = Arc::new(JobProgress(progress));
        let outcome = tokio::select! {
            outcome = host.scan(request, sink) => Some(outcome),
            _ = cancel.notified() => None,
        };
        self.inner.running.lock().expect("running jobs").remove(id);
        let (state, error, summary) = match outcome {
            None => ("cancelled", None, None),
            Some(Err(e)) => ("failed", Some(e.message), None),
            Some(Ok(outcome)) => {
                let mut report = outcome.report;
                report.target = if source == "upload" {
                    "upload".into()
                } else {
                    source.to_string()
                };
                match self.write_reports(id, &report) {
                    Ok(()) => (
                        "done",
                        None,
                        Some(serde_json::json!({
                            "findings": report.summary.findings,
                            "by_severity": report.summary.by_severity,
                            "files_scanned": report.summary.files_scanned,
                            "bytes_scanned": report.summary.bytes_scanned,
                            "files_ignored": report.summary.files_ignored,
                            "partial": report.partial,
                            "duration_ms": report.duration_ms,
                        })),
                    ),
                    Err(e) => (
                        "failed",
                        Some(format!("cannot keep the reports: {e}")),
                        None,
                    ),
                }
            }
        };
        self.inner.metrics.scan_finished(state);
        if source == "upload" {
            let _ = std::fs::remove_dir_all(target);
        }
        if let Err(e) = sqlx::query(
            "UPDATE jobs SET state = ?, finished_at = ?, error = ?, summary = ? WHERE id = ?",
        )
        .bind(state)
        .bind(now())
        .bind(error)
        .bind(summary.map(|s| s.to_string()))
        .bind(id)
        .execute(&self.inner.pool)
        .await
        {
            tracing::error!(job = id, error = %e, "cannot record a finished scan job");
        }
    }

    fn write_reports(&self, id: &str, report: &secflow_scan::ScanReport) -> std::io::Result<()> {
        let dir = self.job_dir(id);
        std::fs::create_dir_all(&dir)?;
        for format in [Format::Json, Format::Sarif, Format::Html] {
            let text = output::render(report, format, Default::default());
            secflow_io::write_atomic(
                &dir.join(report_name(format)),
                text.as_bytes(),
                secflow_io::Mode::Private,
            )?;
        }
        Ok(())
    }
}

struct JobProgress(Arc<(AtomicU64, AtomicU64)>);

impl secflow_scan::Progress for JobProgress {
    fn scanned(&self, files: u64, bytes: u64) {
        self.0.0.store(files, Ordering::Relaxed);
        self.0.1.store(bytes, Ordering::Relaxed);
    }
}

fn report_name(format: Format) -> &'static str {
    match format {
        Format::Json | Format::Table => "report.json",
        Format::Sarif => "report.sarif",
        Format::Html => "report.html",
    }
}

fn new_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    format!("scan_{}", hex::encode(bytes))
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn internal(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "scan job store");
    Problem::internal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of_one_file() -> bytes::Bytes {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "app.py", &b"x = 1"[..])
            .unwrap();
        builder.into_inner().unwrap().into()
    }

    fn test_host(home: &std::path::Path) -> Host {
        Host::open(secflow_host::HostConfig {
            state_dir: secflow_host::StateDir::resolve(Some(home)),
            actor: "test".into(),
        })
    }

    /// A queue with no workers (its jobs stay queued) and one uploaded job in it.
    async fn queue_with_one_upload(host: &Host) -> (Jobs, JobInfo) {
        let jobs = Jobs::open(
            host.clone(),
            &crate::ServerConfig::default(),
            Metrics::new(),
        )
        .await
        .unwrap();
        let job = jobs
            .submit(
                "test",
                Target::Upload(tar_of_one_file()),
                ScanJobOptions::default(),
            )
            .await
            .unwrap();
        (jobs, job)
    }

    /// A job is deleted only once it has ended, and then with its files: a queued one is a
    /// 409 until cancelled; afterwards the job is gone from the queue and the disk.
    #[tokio::test]
    async fn only_an_ended_job_is_deleted_and_its_files_go_with_it() {
        let home = tempfile::tempdir().unwrap();
        let host = test_host(home.path());
        let (jobs, job) = queue_with_one_upload(&host).await;
        let dir = jobs.job_dir(&job.id);
        assert!(dir.join("target/app.py").is_file());

        let refused = jobs.delete(&job.id).await.unwrap_err();
        assert_eq!(refused.status, 409);
        assert!(
            refused.detail.contains("cancel it first"),
            "{}",
            refused.detail
        );
        assert_eq!(jobs.get(&job.id).await.unwrap().unwrap().state, "queued");
        assert!(dir.is_dir(), "a refused delete leaves the job's files");

        let cancelled = jobs.cancel(&job.id).await.unwrap().unwrap();
        assert_eq!(cancelled.state, "cancelled");
        let deleted = jobs.delete(&job.id).await.unwrap().unwrap();
        assert_eq!(deleted.state, "cancelled");
        assert!(jobs.get(&job.id).await.unwrap().is_none());
        assert!(!dir.exists(), "the job's files are removed");
        assert!(jobs.delete(&job.id).await.unwrap().is_none(), "gone: 404");
        assert!(jobs.list(100, 0).await.unwrap().is_empty());
    }

    /// A server killed while unpacking an upload leaves a directory without a job; the next
    /// start removes it once it is old enough, and never a job's own directory.
    #[tokio::test]
    async fn a_start_removes_old_job_directories_without_a_job() {
        let home = tempfile::tempdir().unwrap();
        let host = test_host(home.path());
        let (jobs, job) = queue_with_one_upload(&host).await;
        let kept = jobs.job_dir(&job.id);
        let orphan = jobs.job_dir("scan_0123456789abcdef");
        let fresh = jobs.job_dir("scan_fedcba9876543210");
        for dir in [&orphan, &fresh] {
            std::fs::create_dir_all(dir.join("target")).unwrap();
            std::fs::write(dir.join("target/half.py"), "x").unwrap();
        }
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        for dir in [&orphan, &kept] {
            std::fs::File::open(dir)
                .unwrap()
                .set_modified(an_hour_ago)
                .unwrap();
        }
        drop(jobs);

        let jobs = Jobs::open(host, &crate::ServerConfig::default(), Metrics::new())
            .await
            .unwrap();
        assert!(
            !orphan.exists(),
            "an old directory without a job is removed"
        );
        assert!(fresh.exists(), "a fresh one may be another server's upload");
        assert!(
            kept.join("target/app.py").is_file(),
            "a job's directory stays"
        );
        assert_eq!(jobs.get(&job.id).await.unwrap().unwrap().state, "queued");
    }
}
