//! Run statistics with shared commits. A run's statistics are written before its caller
//! hears back (a crash loses none that were reported), and one commit is an fsync: a server
//! running thousands of plugin calls a second cannot pay one each. A writer task takes
//! every run queued while its previous commit ran and records them in one transaction, as
//! the audit log does with its appends.

use crate::{Registry, RegistryError, RunRecord};
use std::path::Path;
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

struct Pending {
    run: Run,
    done: oneshot::Sender<Result<u64, String>>,
}

/// The most runs one commit takes (bounds a transaction's size under a flood).
const MAX_GROUP: usize = 1024;

/// A writer of run statistics with its own registry connection.
#[derive(Debug, Clone)]
pub struct RunLog {
    queue: mpsc::UnboundedSender<Pending>,
}

impl RunLog {
    /// Opens the registry in `dir` for the writer task (spawned on the current tokio
    /// runtime; it ends when every handle is dropped).
    pub async fn open(dir: &Path) -> Result<RunLog, RegistryError> {
        let mut registry = Registry::open(dir).await?;
        let (queue, mut incoming) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            // Waits for one, then takes whatever else is queued, up to MAX_GROUP.
            let mut batch = Vec::new();
            while incoming.recv_many(&mut batch, MAX_GROUP).await > 0 {
                let batch = std::mem::take(&mut batch);
                let records: Vec<RunRecord<'_>> = batch
                    .iter()
                    .map(|p| RunRecord {
                        plugin_id: &p.run.plugin_id,
                        version: &p.run.version,
                        duration_us: p.run.duration_us,
                        outcome: &p.run.outcome,
                        violation: p.run.violation,
                    })
                    .collect();
                let outcome = registry.record_runs(&records).await;
                drop(records);
                match outcome {
                    Ok(counts) => {
                        for (pending, count) in batch.into_iter().zip(counts) {
                            let _ = pending.done.send(Ok(count));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for pending in batch {
                            let _ = pending.done.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        Ok(RunLog { queue })
    }

    /// Records a run with a durable commit (shared with the runs queued beside it); returns
    /// the plugin's violation count right after it.
    pub async fn record(&self, run: Run) -> Result<u64, RegistryError> {
        let (done, result) = oneshot::channel();
        self.queue.send(Pending { run, done }).map_err(|_| {
            RegistryError::Io(
                "the run statistics writer has stopped; the run was not recorded".into(),
            )
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
}
