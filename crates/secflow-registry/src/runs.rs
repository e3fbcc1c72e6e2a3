//! Run statistics with shared commits. One commit is an fsync and a few round trips to
//! SQLite's thread: a server running thousands of plugin calls a second cannot pay one per
//! run. A writer task takes the queued runs and records them in one transaction.
//!
//! A run that changes what the host decides (a sandbox violation counts toward quarantine;
//! a health check) is committed before its caller hears back. A clean run is queued and
//! committed within [`COALESCE`], together with the runs around it: statistics of clean runs
//! are observability, and the run itself is in the audit log, committed before the caller
//! hears back. [`RunLog::flush`] commits everything queued so far (readers of statistics
//! and a host that shuts down call it); a crash loses at most the last [`COALESCE`] of
//! clean runs' statistics, never a violation.

use crate::{Registry, RegistryError, RunRecord};
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// One finished invocation, owned (it waits in a queue).
#[derive(Debug, Clone)]
pub struct Run {
    pub plugin_id: String,
    pub version: String,
    pub duration_us: u64,
    /// `ok` or the error kind (`timeout`, `capability-denied`, ...).
    pub outcome: String,
    pub violation: bool,
}

enum Message {
    /// A run, with the caller waiting for its commit (and its plugin's violation count)
    /// or not.
    Run {
        run: Run,
        done: Option<oneshot::Sender<Result<u64, String>>>,
    },
    /// Commit everything queued before this, then answer.
    Flush(oneshot::Sender<Result<(), String>>),
}

impl Message {
    fn awaited(&self) -> bool {
        !matches!(self, Message::Run { done: None, .. })
    }
}

/// The most runs one commit takes (bounds a transaction's size under a flood).
const MAX_GROUP: usize = 1024;

/// How long a clean run waits at most for others to share its commit.
pub const COALESCE: Duration = Duration::from_millis(20);

/// A writer of run statistics with its own registry connection.
#[derive(Debug, Clone)]
pub struct RunLog {
    queue: mpsc::UnboundedSender<Message>,
}

impl RunLog {
    /// Opens the registry in `dir` for the writer task (spawned on the current tokio
    /// runtime; it commits what is queued and ends when every handle is dropped).
    pub async fn open(dir: &Path) -> Result<RunLog, RegistryError> {
        let registry = Registry::open(dir).await?;
        let (queue, incoming) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(write_runs(registry, incoming));
        Ok(RunLog { queue })
    }

    /// Records a run and waits for its commit (shared with the runs queued beside it);
    /// returns the plugin's violation count right after it.
    pub async fn record(&self, run: Run) -> Result<u64, RegistryError> {
        let (done, result) = oneshot::channel();
        self.send(Message::Run {
            run,
            done: Some(done),
        })?;
        match result.await {
            Ok(Ok(count)) => Ok(count),
            Ok(Err(message)) => Err(RegistryError::Io(format!(
                "recording the run failed: {message}"
            ))),
            Err(_) => Err(RegistryError::Io(
                "the run statistics commit was cancelled; the run was not recorded".into(),
            )),
        }
    }

    /// Queues a clean run: committed within [`COALESCE`] or at the next
    /// [`RunLog::flush`], without waiting for it.
    pub fn note(&self, run: Run) -> Result<(), RegistryError> {
        self.send(Message::Run { run, done: None })
    }

    /// Commits every run queued so far.
    pub async fn flush(&self) -> Result<(), RegistryError> {
        let (done, result) = oneshot::channel();
        self.send(Message::Flush(done))?;
        match result.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(RegistryError::Io(format!(
                "recording run statistics failed: {message}"
            ))),
            Err(_) => Err(RegistryError::Io(
                "the run statistics commit was cancelled".into(),
            )),
        }
    }

    fn send(&self, message: Message) -> Result<(), RegistryError> {
        self.queue.send(message).map_err(|_| {
            RegistryError::Io(
                "the run statistics writer has stopped; the run was not recorded".into(),
            )
        })
    }
}

/// The writer: waits for one message; unless someone waits for it, lets others join for
/// up to [`COALESCE`]; commits them all.
async fn write_runs(mut registry: Registry, mut incoming: mpsc::UnboundedReceiver<Message>) {
    let mut batch = Vec::new();
    while incoming.recv_many(&mut batch, MAX_GROUP).await > 0 {
        let deadline = tokio::time::Instant::now() + COALESCE;
        while batch.len() < MAX_GROUP && !batch.iter().any(Message::awaited) {
            let room = MAX_GROUP - batch.len();
            let more = tokio::time::timeout_at(deadline, incoming.recv_many(&mut batch, room));
            if !matches!(more.await, Ok(n) if n > 0) {
                break; // the deadline, or every handle dropped
            }
        }
        commit(&mut registry, std::mem::take(&mut batch)).await;
    }
}

async fn commit(registry: &mut Registry, batch: Vec<Message>) {
    let mut runs = Vec::with_capacity(batch.len());
    let mut waiters = Vec::with_capacity(batch.len());
    let mut flushes = Vec::new();
    for message in batch {
        match message {
            Message::Run { run, done } => {
                runs.push(run);
                waiters.push(done);
            }
            Message::Flush(done) => flushes.push(done),
        }
    }
    let records: Vec<RunRecord<'_>> = runs
        .iter()
        .map(|run| RunRecord {
            plugin_id: &run.plugin_id,
            version: &run.version,
            duration_us: run.duration_us,
            outcome: &run.outcome,
            violation: run.violation,
        })
        .collect();
    let outcome = registry
        .record_runs(&records)
        .await
        .map_err(|e| e.to_string());
    if let Err(message) = &outcome {
        // Nobody waits for a clean run's statistics: say it here.
        tracing::warn!(runs = records.len(), error = %message, "run statistics not recorded");
    }
    for done in flushes {
        let _ = done.send(outcome.as_ref().map(|_| ()).map_err(Clone::clone));
    }
    match outcome {
        Ok(counts) => {
            for (done, count) in waiters.into_iter().zip(counts) {
                if let Some(done) = done {
                    let _ = done.send(Ok(count));
                }
            }
        }
        Err(message) => {
            for done in waiters.into_iter().flatten() {
                let _ = done.send(Err(message.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_runs_are_all_recorded_with_their_violation_counts() {
        let dir = tempfile::tempdir().unwrap();
        let log = RunLog::open(dir.path()).await.unwrap();
        // No plugin row: the counts stay 0, the runs and totals are still kept.
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.record(Run {
                    plugin_id: "p".into(),
                    version: "1.0.0".into(),
                    duration_us: i,
                    outcome: if i % 10 == 0 {
                        "timeout".into()
                    } else {
                        "ok".into()
                    },
                    violation: false,
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 0);
        }
        let mut registry = Registry::open(dir.path()).await.unwrap();
        let stats = registry.stats("p").await.unwrap();
        assert_eq!(stats.executions, 200);
        assert_eq!(stats.errors, 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clean_runs_are_committed_without_waiting_and_a_violation_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = RunLog::open(dir.path()).await.unwrap();
        let run = |outcome: &str, violation| Run {
            plugin_id: "p".into(),
            version: "1.0.0".into(),
            duration_us: 5,
            outcome: outcome.into(),
            violation,
        };
        for _ in 0..50 {
            log.note(run("ok", false)).unwrap();
        }
        // Within the coalescing bound, without a flush.
        tokio::time::sleep(COALESCE * 10).await;
        let mut registry = Registry::open(dir.path()).await.unwrap();
        assert_eq!(registry.stats("p").await.unwrap().executions, 50);

        // A waited-for run commits the clean ones queued before it too, at once.
        for _ in 0..10 {
            log.note(run("ok", false)).unwrap();
        }
        log.record(run("timeout", false)).await.unwrap();
        let stats = registry.stats("p").await.unwrap();
        assert_eq!((stats.executions, stats.errors), (61, 1));

        // A flush commits what is queued; dropping the last handle commits the rest.
        for _ in 0..7 {
            log.note(run("ok", false)).unwrap();
        }
        log.flush().await.unwrap();
        assert_eq!(registry.stats("p").await.unwrap().executions, 68);
        log.note(run("ok", false)).unwrap();
        drop(log);
        tokio::time::sleep(COALESCE * 10).await;
        assert_eq!(registry.stats("p").await.unwrap().executions, 69);
    }
}
