//! The registry database and its operations.

use crate::RegistryError;
use crate::admission::Signer;
use crate::blobs::BlobStore;
use crate::deps::{self, Node};
use crate::grants::Grant;
use secflow_manifest::Manifest;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};
use std::collections::HashSet;
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS plugins (
    id TEXT PRIMARY KEY NOT NULL,
    active_version TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    pending_approval INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    quarantine_reason TEXT,
    violations INTEGER NOT NULL DEFAULT 0,
    installed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    blob TEXT NOT NULL,
    kind TEXT NOT NULL,
    manifest TEXT NOT NULL,
    signers TEXT NOT NULL,
    installed_at TEXT NOT NULL,
    PRIMARY KEY (plugin_id, version)
);
CREATE TABLE IF NOT EXISTS grants (
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (plugin_id, version)
);

CREATE TABLE IF NOT EXISTS health (
    plugin_id TEXT PRIMARY KEY NOT NULL,
    version TEXT NOT NULL,
    time TEXT NOT NULL,
    ok INTEGER NOT NULL,
    message TEXT NOT NULL
);
";

/// Run statistics, in their own database file (`runs.db`, attached as `runlog`): they
/// change with every run, the registry file only when an operator changes something, so a
/// run can tell from the registry file's stamp that its clearance still holds.
const RUNLOG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runlog.runs (
    seq INTEGER PRIMARY KEY,
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    time TEXT NOT NULL,
    duration_us INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    violation INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runlog.runs_plugin ON runs(plugin_id, seq);
CREATE TABLE IF NOT EXISTS runlog.run_totals (
    plugin_id TEXT PRIMARY KEY NOT NULL,
    executions INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    violations INTEGER NOT NULL,
    last_run TEXT NOT NULL,
    last_outcome TEXT NOT NULL
);
";

/// Registries written before `runs.db` kept the runs (and, later, their totals) in
/// `registry.db`: moved once, with totals counted from the runs where there were none.
const MOVE_RUNS: &str = "
INSERT INTO runlog.runs (plugin_id, version, time, duration_us, outcome, violation)
SELECT plugin_id, version, time, duration_us, outcome, violation FROM main.runs ORDER BY seq;
DROP TABLE main.runs;
";
const MOVE_TOTALS: &str = "
INSERT OR REPLACE INTO runlog.run_totals SELECT * FROM main.run_totals;
DROP TABLE main.run_totals;
";
const COUNT_OLD_RUNS: &str = "
INSERT OR REPLACE INTO runlog.run_totals
    (plugin_id, executions, errors, violations, last_run, last_outcome)
SELECT r.plugin_id, COUNT(*), SUM(r.outcome <> 'ok'), SUM(r.violation),
       (SELECT x.time FROM main.runs x WHERE x.plugin_id = r.plugin_id ORDER BY x.seq DESC LIMIT 1),
       (SELECT x.outcome FROM main.runs x WHERE x.plugin_id = r.plugin_id ORDER BY x.seq DESC LIMIT 1)
FROM main.runs r GROUP BY r.plugin_id";

/// Runs kept for the average and p95 (the most recent).
const STATS_WINDOW: i64 = 10_000;

/// The window of single runs is trimmed each time a plugin's total crosses a multiple of
/// this (so it holds at most `STATS_WINDOW + PRUNE_EVERY` rows a plugin).
const PRUNE_EVERY: i64 = 1_000;

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// An installed plugin at its active version.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstalledPlugin {
    pub id: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub description: String,
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    /// SHA-256 of the active version's package payload.
    pub digest: String,
    pub enabled: bool,
    /// The active version asks for more than was approved; disabled until approved.
    pub pending_approval: bool,
    pub quarantined: bool,
    pub quarantine_reason: Option<String>,
    /// Sandbox violations since install or the last release.
    pub violations: u64,
    pub signers: Vec<Signer>,
    pub installed_at: String,
    pub updated_at: String,
}

impl InstalledPlugin {
    /// `enabled`, `disabled`, `pending-approval` or `quarantined`.
    pub fn state(&self) -> &'static str {
        if self.quarantined {
            "quarantined"
        } else if self.pending_approval {
            "pending-approval"
        } else if self.enabled {
            "enabled"
        } else {
            "disabled"
        }
    }
}

/// One stored version of a plugin.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRecord {
    pub id: String,
    pub version: String,
    pub digest: String,
    /// Name of the package file in the blob store.
    pub blob: String,
    pub kind: String,
    pub manifest: Manifest,
    pub signers: Vec<Signer>,
    pub installed_at: String,
    pub active: bool,
}

/// How [`Registry::install`] treats an installed plugin of the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallMode {
    /// The id must not be installed.
    Install,
    /// The id must be installed, at a lower version unless `allow_older`.
    Upgrade { allow_older: bool },
}

/// A version to store, admitted and approved by the caller.
#[derive(Debug)]
pub struct NewVersion<'a> {
    /// The whole package file, signatures included (kept for `info` and re-verification).
    pub package_file: &'a [u8],
    pub manifest: &'a Manifest,
    /// Payload SHA-256.
    pub digest: String,
    pub signers: Vec<Signer>,
    pub grant: Grant,
    /// Enabled after the change (false for an upgrade waiting for approval).
    pub enable: bool,
    /// The active version and digest the caller saw when it computed the grant (`None`: not
    /// installed). If another process changed the plugin meanwhile, the install is refused
    /// with [`RegistryError::Changed`] instead of storing a grant computed from stale state.
    pub expected: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum InstallOutcome {
    Installed,
    Upgraded {
        from: String,
    },
    /// That exact package was already the active version.
    Unchanged,
    /// The same payload with other signatures (a countersignature, a fresh signature after
    /// a key rotation or expiry): the stored file and the grant's signers were replaced.
    Resigned,
}

/// Run statistics of one plugin.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStats {
    pub executions: u64,
    pub errors: u64,
    pub violations: u64,
    pub last_run: Option<String>,
    pub last_outcome: Option<String>,
    /// Over the most recent 10,000 runs.
    pub avg_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// A plugin's run totals, for the rankings of the security dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginUsage {
    pub plugin_id: String,
    pub executions: u64,
    pub errors: u64,
    pub violations: u64,
}

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct RunRecord<'a> {
    pub plugin_id: &'a str,
    pub version: &'a str,
    pub duration_us: u64,
    /// `ok` or the error kind (`timeout`, `capability-denied`, ...).
    pub outcome: &'a str,
    pub violation: bool,
}

/// The last health check.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub version: String,
    pub time: String,
    pub ok: bool,
    pub message: String,
}

/// What `secflow plugin search` filters on; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Case-insensitive substring of id, name, description or tags.
    pub text: Option<String>,
    pub kind: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
}

impl SearchQuery {
    /// Whether `p` matches: kind exactly, category and tag case-insensitively, text as a
    /// case-insensitive substring of the id, name, description, tags or categories.
    pub fn matches(&self, p: &InstalledPlugin) -> bool {
        let lower = |s: &str| s.to_lowercase();
        let text = self.text.as_deref().map(lower);
        self.kind.as_deref().is_none_or(|k| p.kind == k)
            && self
                .category
                .as_deref()
                .is_none_or(|c| p.categories.iter().any(|x| x.eq_ignore_ascii_case(c)))
            && self
                .tag
                .as_deref()
                .is_none_or(|t| p.tags.iter().any(|x| x.eq_ignore_ascii_case(t)))
            && text.as_deref().is_none_or(|t| {
                [&p.id, &p.name, &p.description]
                    .into_iter()
                    .chain(p.tags.iter())
                    .chain(p.categories.iter())
                    .any(|field| lower(field).contains(t))
            })
    }
}

/// An open registry.
#[derive(Debug)]
pub struct Registry {
    conn: SqliteConnection,
    blobs: BlobStore,
}

fn corrupt(what: impl std::fmt::Display) -> RegistryError {
    RegistryError::Corrupt(what.to_string())
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, RegistryError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{what}: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("registry records serialize")
}

impl Registry {
    /// Opens (creating if needed) the registry in `dir` (`SECFLOW_HOME`): `registry.db` and
    /// `blobs/`.
    pub async fn open(dir: &Path) -> Result<Registry, RegistryError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RegistryError::Io(format!("{}: {e}", dir.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("registry.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(60));
        let mut conn = SqliteConnection::connect_with(&options).await?;
        sqlx::raw_sql(SCHEMA).execute(&mut conn).await?;
        sqlx::query("ATTACH DATABASE ? AS runlog")
            .bind(dir.join("runs.db").to_string_lossy().into_owned())
            .execute(&mut conn)
            .await?;
        // Statistics need no fsync per commit: WAL keeps the file consistent through a
        // crash, a power cut can lose the last commits. The registry itself stays FULL.
        sqlx::raw_sql("PRAGMA runlog.journal_mode = WAL; PRAGMA runlog.synchronous = NORMAL;")
            .execute(&mut conn)
            .await?;
        sqlx::raw_sql(RUNLOG_SCHEMA).execute(&mut conn).await?;
        move_old_runs(&mut conn).await?;
        Ok(Registry {
            conn,
            blobs: BlobStore::new(dir.join("blobs")),
        })
    }

    /// Whether the connection is usable for a new operation: it answers and holds no
    /// transaction (one left open by a cancelled operation is rolled back by sqlx first;
    /// the ping waits for that, as the connection's commands run in order).
    pub async fn is_idle(&mut self) -> bool {
        self.conn.ping().await.is_ok() && !self.conn.is_in_transaction()
    }

    /// Stores an admitted, approved version: the blob, the version row, its grant and the
    /// plugin's state, in one transaction. Dependencies are resolved against the installed
    /// set inside that transaction, so concurrent installs cannot break them.
    pub async fn install(
        &mut self,
        new: NewVersion<'_>,
        mode: InstallMode,
    ) -> Result<InstallOutcome, RegistryError> {
        let id = new.manifest.id.to_string();
        let version = new.manifest.version.to_string();
        let file_name = crate::blobs::blob_name(new.package_file);
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT p.active_version, v.digest, v.blob FROM plugins p
             JOIN versions v ON v.plugin_id = p.id AND v.version = p.active_version
             WHERE p.id = ?",
        )
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
        let current: Option<(String, String)> = row.as_ref().map(|r| (r.get(0), r.get(1)));
        let current_blob: Option<String> = row.as_ref().map(|r| r.get(2));
        if let Some((active, digest)) = &current
            && active == &version
            && digest == &new.digest
        {
            if current_blob.as_deref() == Some(file_name.as_str()) {
                return Ok(InstallOutcome::Unchanged);
            }
            // Same payload, other signatures: keep the grant, rebind it to the new signers.
            let blob = self.blobs.put(new.package_file)?;
            sqlx::query(
                "UPDATE versions SET blob = ?, signers = ? WHERE plugin_id = ? AND version = ?",
            )
            .bind(&blob)
            .bind(to_json(&new.signers))
            .bind(&id)
            .bind(&version)
            .execute(&mut *tx)
            .await?;
            let body: String =
                sqlx::query_scalar("SELECT body FROM grants WHERE plugin_id = ? AND version = ?")
                    .bind(&id)
                    .bind(&version)
                    .fetch_one(&mut *tx)
                    .await?;
            let mut grant: Grant = parse_json(&body, "grant")?;
            grant.signers = new.grant.signers.clone();
            sqlx::query("UPDATE grants SET body = ? WHERE plugin_id = ? AND version = ?")
                .bind(to_json(&grant))
                .bind(&id)
                .bind(&version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(InstallOutcome::Resigned);
        }
        if current != new.expected {
            return Err(RegistryError::Changed(id));
        }
        match (mode, &current) {
            (InstallMode::Install, Some((active, _))) => {
                return Err(RegistryError::AlreadyInstalled {
                    id,
                    version: active.clone(),
                });
            }
            (InstallMode::Upgrade { .. }, None) => return Err(RegistryError::NotInstalled(id)),
            (InstallMode::Upgrade { allow_older }, Some((active, _))) => {
                let active_v = semver::Version::parse(active).map_err(corrupt)?;
                if new.manifest.version <= active_v && !allow_older {
                    return Err(RegistryError::NotNewer {
                        id,
                        version,
                        current: active.clone(),
                    });
                }
            }
            (InstallMode::Install, None) => {}
        }
        let stored: Option<String> =
            sqlx::query_scalar("SELECT digest FROM versions WHERE plugin_id = ? AND version = ?")
                .bind(&id)
                .bind(&version)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(existing) = &stored
            && existing != &new.digest
        {
            return Err(RegistryError::DigestConflict {
                id,
                version,
                existing: existing.clone(),
            });
        }
        let installed = active_nodes(&mut tx).await?;
        deps::check_install(&installed, &Node::from_manifest(new.manifest))
            .map_err(RegistryError::Dependencies)?;

        // The blob is durable before the row that names it commits.
        let blob = self.blobs.put(new.package_file)?;
        let at = now();
        sqlx::query(
            "INSERT OR REPLACE INTO versions
             (plugin_id, version, digest, blob, kind, manifest, signers, installed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&version)
        .bind(&new.digest)
        .bind(&blob)
        .bind(new.manifest.kind.as_str())
        .bind(to_json(new.manifest))
        .bind(to_json(&new.signers))
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT OR REPLACE INTO grants (plugin_id, version, body) VALUES (?, ?, ?)")
            .bind(&id)
            .bind(&version)
            .bind(to_json(&new.grant))
            .execute(&mut *tx)
            .await?;
        let outcome = match current {
            None => {
                sqlx::query(
                    "INSERT INTO plugins (id, active_version, enabled, pending_approval,
                     installed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(&version)
                .bind(new.enable)
                .bind(new.grant.pending)
                .bind(&at)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
                InstallOutcome::Installed
            }
            Some((from, _)) => {
                sqlx::query(
                    "UPDATE plugins SET active_version = ?, enabled = ?, pending_approval = ?,
                     updated_at = ? WHERE id = ?",
                )
                .bind(&version)
                .bind(new.enable)
                .bind(new.grant.pending)
                .bind(&at)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                InstallOutcome::Upgraded { from }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Removes a plugin, every stored version, grant, run record and health record, then
    /// sweeps blobs nothing names any more. Refused while another plugin depends on it.
    pub async fn uninstall(&mut self, id: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT active_version FROM plugins WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(RegistryError::NotInstalled(id.to_string()));
        }
        let installed = active_nodes(&mut tx).await?;
        deps::check_uninstall(&installed, id).map_err(RegistryError::Dependencies)?;
        let removed = versions_in(&mut tx, id).await?;
        for table in ["versions", "grants", "runs", "run_totals", "health"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE plugin_id = ?"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM plugins WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.sweep().await?;
        Ok(removed)
    }

    /// Deletes blobs that no version names (left by a crash between a blob write and its
    /// commit, or by an uninstall), under the write lock so no install in progress loses
    /// its blob. Returns how many files were removed.
    pub async fn sweep(&mut self) -> Result<usize, RegistryError> {
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let keep: HashSet<String> = sqlx::query_scalar("SELECT blob FROM versions")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        let removed = self.blobs.retain(&keep)?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Turns a plugin on or off. Enabling a version with a pending grant approves it
    /// (`approval` says how); the caller has asked the person and the policy first.
    pub async fn set_enabled(
        &mut self,
        id: &str,
        enabled: bool,
        expected_version: &str,
        approval: Option<(&str, &str)>,
    ) -> Result<(), RegistryError> {
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let active: String = sqlx::query_scalar("SELECT active_version FROM plugins WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::NotInstalled(id.to_string()))?;
        // Approve exactly the version the person was shown.
        if active != expected_version {
            return Err(RegistryError::Changed(id.to_string()));
        }
        if let Some((how, by)) = approval {
            let body: String =
                sqlx::query_scalar("SELECT body FROM grants WHERE plugin_id = ? AND version = ?")
                    .bind(id)
                    .bind(&active)
                    .fetch_one(&mut *tx)
                    .await?;
            let mut grant: Grant = parse_json(&body, "grant")?;
            grant.pending = false;
            grant.approval = how.to_string();
            grant.approved_by = by.to_string();
            grant.approved_at = now();
            sqlx::query("UPDATE grants SET body = ? WHERE plugin_id = ? AND version = ?")
                .bind(to_json(&grant))
                .bind(id)
                .bind(&active)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE plugins SET pending_approval = 0 WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE plugins SET enabled = ?, updated_at = ? WHERE id = ?")
            .bind(enabled)
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records one finished invocation; returns the plugin's violation count after it.
    pub async fn record_run(&mut self, run: &RunRecord<'_>) -> Result<u64, RegistryError> {
        Ok(self.record_runs(std::slice::from_ref(run)).await?[0])
    }

    /// Records finished invocations, in order, in one transaction (one commit for all of
    /// them: the server's runs share commits the way audit appends do). Returns, for each,
    /// its plugin's violation count right after it. Totals are kept per plugin; the rows
    /// of single runs only for the most recent [`STATS_WINDOW`] runs of each plugin (the
    /// average and p95 window), so a busy server's registry does not grow with every run.
    pub async fn record_runs(&mut self, runs: &[RunRecord<'_>]) -> Result<Vec<u64>, RegistryError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let time = now();
        // A violation writes the registry (the plugin's count): its write lock first, so the
        // read of the count cannot go stale. Clean runs write only `runs.db`.
        let mut tx = if runs.iter().any(|r| r.violation) {
            self.conn.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.conn.begin().await?
        };
        // 6 parameters a row; SQLite allows 32,766 in a statement.
        for chunk in runs.chunks(1000) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO runs (plugin_id, version, time, duration_us, outcome, violation) ",
            );
            insert.push_values(chunk, |mut row, run| {
                row.push_bind(run.plugin_id)
                    .push_bind(run.version)
                    .push_bind(&time)
                    .push_bind(run.duration_us as i64)
                    .push_bind(run.outcome)
                    .push_bind(run.violation);
            });
            insert.build().execute(&mut *tx).await?;
        }

        // Violation counts in run order: each violation bumps its plugin's count.
        let mut current: std::collections::HashMap<&str, u64> = Default::default();
        let mut counts = Vec::with_capacity(runs.len());
        for run in runs {
            let count = if run.violation {
                let n: Option<i64> = sqlx::query_scalar(
                    "UPDATE plugins SET violations = violations + 1 WHERE id = ? RETURNING violations",
                )
                .bind(run.plugin_id)
                .fetch_optional(&mut *tx)
                .await?;
                n.unwrap_or(0) as u64
            } else if let Some(n) = current.get(run.plugin_id) {
                *n
            } else {
                let n: Option<i64> =
                    sqlx::query_scalar("SELECT violations FROM plugins WHERE id = ?")
                        .bind(run.plugin_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                n.unwrap_or(0) as u64
            };
            current.insert(run.plugin_id, count);
            counts.push(count);
        }

        // Totals per plugin, and the window of single runs trimmed now and then.
        let mut totals: std::collections::BTreeMap<&str, (i64, i64, i64, &str)> =
            Default::default();
        for run in runs {
            let t = totals.entry(run.plugin_id).or_insert((0, 0, 0, "ok"));
            t.0 += 1;
            t.1 += i64::from(run.outcome != "ok");
            t.2 += i64::from(run.violation);
            t.3 = run.outcome;
        }
        for (plugin_id, (executions, errors, violations, last_outcome)) in totals {
            let after: i64 = sqlx::query_scalar(
                "INSERT INTO run_totals
                     (plugin_id, executions, errors, violations, last_run, last_outcome)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (plugin_id) DO UPDATE SET
                     executions = executions + excluded.executions,
                     errors = errors + excluded.errors,
                     violations = violations + excluded.violations,
                     last_run = excluded.last_run,
                     last_outcome = excluded.last_outcome
                 RETURNING executions",
            )
            .bind(plugin_id)
            .bind(executions)
            .bind(errors)
            .bind(violations)
            .bind(&time)
            .bind(last_outcome)
            .fetch_one(&mut *tx)
            .await?;
            if (after - executions) / PRUNE_EVERY != after / PRUNE_EVERY {
                sqlx::query(
                    "DELETE FROM runs WHERE plugin_id = ?1 AND seq <
                     (SELECT seq FROM runs WHERE plugin_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                )
                .bind(plugin_id)
                .bind(STATS_WINDOW - 1)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Refuses the plugin until [`Registry::release`].
    pub async fn quarantine(&mut self, id: &str, reason: &str) -> Result<(), RegistryError> {
        let n = sqlx::query(
            "UPDATE plugins SET quarantined = 1, quarantine_reason = ?, updated_at = ? WHERE id = ?",
        )
        .bind(reason)
        .bind(now())
        .bind(id)
        .execute(&mut self.conn)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotInstalled(id.to_string()));
        }
        Ok(())
    }

    /// Lifts a quarantine and resets the violation count.
    pub async fn release(&mut self, id: &str) -> Result<(), RegistryError> {
        let n = sqlx::query(
            "UPDATE plugins SET quarantined = 0, quarantine_reason = NULL, violations = 0,
             updated_at = ? WHERE id = ?",
        )
        .bind(now())
        .bind(id)
        .execute(&mut self.conn)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotInstalled(id.to_string()));
        }
        Ok(())
    }

    pub async fn record_health(
        &mut self,
        id: &str,
        version: &str,
        ok: bool,
        message: &str,
    ) -> Result<(), RegistryError> {
        sqlx::query(
            "INSERT OR REPLACE INTO health (plugin_id, version, time, ok, message)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(version)
        .bind(now())
        .bind(ok)
        .bind(message)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    pub async fn health(&mut self, id: &str) -> Result<Option<Health>, RegistryError> {
        Ok(
            sqlx::query("SELECT version, time, ok, message FROM health WHERE plugin_id = ?")
                .bind(id)
                .fetch_optional(&mut self.conn)
                .await?
                .map(|r| Health {
                    version: r.get(0),
                    time: r.get(1),
                    ok: r.get(2),
                    message: r.get(3),
                }),
        )
    }

    /// Every installed plugin at its active version, by id.
    pub async fn list(&mut self) -> Result<Vec<InstalledPlugin>, RegistryError> {
        let rows = sqlx::query(PLUGIN_SELECT).fetch_all(&mut self.conn).await?;
        rows.iter().map(plugin_from_row).collect()
    }

    pub async fn get(&mut self, id: &str) -> Result<Option<InstalledPlugin>, RegistryError> {
        Ok(self.list().await?.into_iter().find(|p| p.id == id))
    }

    /// An installed plugin, or [`RegistryError::NotInstalled`].
    pub async fn require(&mut self, id: &str) -> Result<InstalledPlugin, RegistryError> {
        self.get(id)
            .await?
            .ok_or_else(|| RegistryError::NotInstalled(id.to_string()))
    }

    pub async fn search(&mut self, q: &SearchQuery) -> Result<Vec<InstalledPlugin>, RegistryError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|p| q.matches(p))
            .collect())
    }

    /// Every stored version of a plugin, newest first.
    pub async fn versions(&mut self, id: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        let mut tx = self.conn.begin().await?;
        let out = versions_in(&mut tx, id).await?;
        tx.commit().await?;
        if out.is_empty() {
            return Err(RegistryError::NotInstalled(id.to_string()));
        }
        Ok(out)
    }

    /// The active version's record.
    pub async fn active(&mut self, id: &str) -> Result<VersionRecord, RegistryError> {
        self.versions(id)
            .await?
            .into_iter()
            .find(|v| v.active)
            .ok_or_else(|| corrupt(format!("{id} has no active version")))
    }

    /// The plugin, its active version and that version's grant, read in one statement so
    /// that a concurrent upgrade cannot pair one version's record with another's grant.
    pub async fn snapshot(
        &mut self,
        id: &str,
    ) -> Result<(InstalledPlugin, VersionRecord, Grant), RegistryError> {
        // One statement (a consistent read without a transaction round trip): run
        // clearance asks this for every run.
        let row = sqlx::query(
            "SELECT p.id, p.active_version, p.enabled, p.pending_approval, p.quarantined,
                    p.quarantine_reason, p.violations, p.installed_at, p.updated_at,
                    v.digest, v.kind, v.manifest, v.signers, v.blob, v.installed_at, g.body
             FROM plugins p
             JOIN versions v ON v.plugin_id = p.id AND v.version = p.active_version
             LEFT JOIN grants g ON g.plugin_id = p.id AND g.version = p.active_version
             WHERE p.id = ?",
        )
        .bind(id)
        .fetch_optional(&mut self.conn)
        .await?
        .ok_or_else(|| RegistryError::NotInstalled(id.to_string()))?;
        let manifest: Manifest = parse_json(&row.get::<String, _>(11), "manifest")?;
        let plugin = plugin_with_manifest(&row, &manifest)?;
        let record = VersionRecord {
            id: id.to_string(),
            version: plugin.version.clone(),
            digest: row.get(9),
            blob: row.get(13),
            kind: row.get(10),
            manifest,
            signers: plugin.signers.clone(),
            installed_at: row.get(14),
            active: true,
        };
        let body: Option<String> = row.get(15);
        let grant = parse_json(
            &body.ok_or_else(|| corrupt(format!("{id} {} has no grant", plugin.version)))?,
            "grant",
        )?;
        Ok((plugin, record, grant))
    }

    pub async fn grant(&mut self, id: &str, version: &str) -> Result<Grant, RegistryError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM grants WHERE plugin_id = ? AND version = ?")
                .bind(id)
                .bind(version)
                .fetch_optional(&mut self.conn)
                .await?;
        parse_json(
            &body.ok_or_else(|| corrupt(format!("{id} {version} has no grant")))?,
            "grant",
        )
    }

    /// The stored package file of a version, checked against its blob name and its payload
    /// digest.
    pub fn package(&self, record: &VersionRecord) -> Result<Vec<u8>, RegistryError> {
        package_in(&self.blobs, record)
    }

    /// The blob store (package files), for reading packages without a connection.
    pub fn blobs(&self) -> BlobStore {
        self.blobs.clone()
    }

    /// The `limit` plugins with the most runs, or with `by_errors` the most failed runs
    /// (errors and violations), from the run totals.
    pub async fn usage(
        &mut self,
        by_errors: bool,
        limit: u64,
    ) -> Result<Vec<PluginUsage>, RegistryError> {
        // Two static statements: sqlx wants its SQL fixed.
        let sql = if by_errors {
            "SELECT plugin_id, executions, errors, violations FROM run_totals
             WHERE errors + violations > 0
             ORDER BY errors + violations DESC, plugin_id LIMIT ?"
        } else {
            "SELECT plugin_id, executions, errors, violations FROM run_totals
             ORDER BY executions DESC, plugin_id LIMIT ?"
        };
        let rows = sqlx::query(sql)
            .bind(limit.min(i64::MAX as u64) as i64)
            .fetch_all(&mut self.conn)
            .await?;
        Ok(rows
            .iter()
            .map(|row| PluginUsage {
                plugin_id: row.get(0),
                executions: row.get::<i64, _>(1) as u64,
                errors: row.get::<i64, _>(2) as u64,
                violations: row.get::<i64, _>(3) as u64,
            })
            .collect())
    }

    pub async fn stats(&mut self, id: &str) -> Result<RunStats, RegistryError> {
        let mut stats = RunStats::default();
        if let Some(row) = sqlx::query(
            "SELECT executions, errors, violations, last_run, last_outcome
             FROM run_totals WHERE plugin_id = ?",
        )
        .bind(id)
        .fetch_optional(&mut self.conn)
        .await?
        {
            stats.executions = row.get::<i64, _>(0) as u64;
            stats.errors = row.get::<i64, _>(1) as u64;
            stats.violations = row.get::<i64, _>(2) as u64;
            stats.last_run = Some(row.get(3));
            stats.last_outcome = Some(row.get(4));
        }
        let mut durations: Vec<i64> = sqlx::query_scalar(
            "SELECT duration_us FROM runs WHERE plugin_id = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(id)
        .bind(STATS_WINDOW)
        .fetch_all(&mut self.conn)
        .await?;
        if !durations.is_empty() {
            durations.sort_unstable();
            let n = durations.len();
            let sum: i64 = durations.iter().sum();
            stats.avg_ms = Some(sum as f64 / n as f64 / 1000.0);
            // Nearest-rank percentile.
            let rank = (0.95 * n as f64).ceil() as usize;
            stats.p95_ms = Some(durations[rank.clamp(1, n) - 1] as f64 / 1000.0);
        }
        Ok(stats)
    }

    /// Checks the registry's integrity: every plugin has its active version and a grant for
    /// it, and every version's blob is present and intact. Returns the problems found.
    pub async fn check(&mut self) -> Result<Vec<String>, RegistryError> {
        let mut problems = Vec::new();
        let orphans: Vec<String> = sqlx::query_scalar(
            "SELECT p.id FROM plugins p LEFT JOIN versions v
             ON v.plugin_id = p.id AND v.version = p.active_version WHERE v.plugin_id IS NULL",
        )
        .fetch_all(&mut self.conn)
        .await?;
        for id in orphans {
            problems.push(format!("{id}: the active version is missing"));
        }
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM plugins")
            .fetch_all(&mut self.conn)
            .await?;
        for id in ids {
            let versions = match self.versions(&id).await {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{id}: {e}"));
                    continue;
                }
            };
            for v in versions {
                if let Err(e) = self.package(&v) {
                    problems.push(format!("{id} {}: {e}", v.version));
                }
                if let Err(e) = self.grant(&id, &v.version).await {
                    problems.push(format!("{id} {}: {e}", v.version));
                }
            }
        }
        Ok(problems)
    }
}

const PLUGIN_SELECT: &str = "
SELECT p.id, p.active_version, p.enabled, p.pending_approval, p.quarantined,
       p.quarantine_reason, p.violations, p.installed_at, p.updated_at,
       v.digest, v.kind, v.manifest, v.signers
FROM plugins p JOIN versions v ON v.plugin_id = p.id AND v.version = p.active_version
ORDER BY p.id";

fn plugin_from_row(r: &SqliteRow) -> Result<InstalledPlugin, RegistryError> {
    plugin_with_manifest(r, &parse_json(&r.get::<String, _>(11), "manifest")?)
}

/// An installed plugin from a row of the plugin query and its active version's manifest.
fn plugin_with_manifest(
    r: &SqliteRow,
    manifest: &Manifest,
) -> Result<InstalledPlugin, RegistryError> {
    Ok(InstalledPlugin {
        id: r.get(0),
        version: r.get(1),
        enabled: r.get(2),
        pending_approval: r.get(3),
        quarantined: r.get(4),
        quarantine_reason: r.get(5),
        violations: r.get::<i64, _>(6) as u64,
        installed_at: r.get(7),
        updated_at: r.get(8),
        digest: r.get(9),
        kind: r.get(10),
        name: manifest.name.clone(),
        description: manifest.description.clone(),
        categories: manifest.categories.clone(),
        tags: manifest.tags.clone(),
        signers: parse_json(&r.get::<String, _>(12), "signers")?,
    })
}

async fn versions_in(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Vec<VersionRecord>, RegistryError> {
    let active: Option<String> =
        sqlx::query_scalar("SELECT active_version FROM plugins WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let rows = sqlx::query(
        "SELECT version, digest, blob, kind, manifest, signers, installed_at
         FROM versions WHERE plugin_id = ?",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            let version: String = r.get(0);
            Ok(VersionRecord {
                id: id.to_string(),
                active: active.as_deref() == Some(version.as_str()),
                version,
                digest: r.get(1),
                blob: r.get(2),
                kind: r.get(3),
                manifest: parse_json(&r.get::<String, _>(4), "manifest")?,
                signers: parse_json(&r.get::<String, _>(5), "signers")?,
                installed_at: r.get(6),
            })
        })
        .collect::<Result<Vec<_>, RegistryError>>()?;
    out.sort_by(|a, b| b.manifest.version.cmp(&a.manifest.version));
    Ok(out)
}

/// The dependency nodes of every installed plugin's active version.
async fn active_nodes(conn: &mut SqliteConnection) -> Result<Vec<Node>, RegistryError> {
    let manifests: Vec<String> = sqlx::query_scalar(
        "SELECT v.manifest FROM plugins p JOIN versions v
         ON v.plugin_id = p.id AND v.version = p.active_version",
    )
    .fetch_all(&mut *conn)
    .await?;
    manifests
        .iter()
        .map(|m| Ok(Node::from_manifest(&parse_json::<Manifest>(m, "manifest")?)))
        .collect()
}

/// The stored package file of a version in `blobs`, checked against its blob name and its
/// payload digest.
pub fn package_in(blobs: &BlobStore, record: &VersionRecord) -> Result<Vec<u8>, RegistryError> {
    let bytes = blobs.get(&record.blob)?;
    let envelope = secflow_package::Envelope::split(&bytes, &Default::default()).map_err(|e| {
        RegistryError::Blob {
            name: record.blob.clone(),
            reason: e.to_string(),
        }
    })?;
    if envelope.digest() != record.digest {
        return Err(RegistryError::Blob {
            name: record.blob.clone(),
            reason: format!(
                "holds payload {} but {} {} was installed as {}",
                envelope.digest(),
                record.id,
                record.version,
                record.digest
            ),
        });
    }
    Ok(bytes)
}

/// Moves the runs of a registry written before `runs.db` (once; under the write lock, so
/// two processes opening it at once move them once).
async fn move_old_runs(conn: &mut SqliteConnection) -> Result<(), RegistryError> {
    async fn old_tables(conn: &mut SqliteConnection) -> Result<Vec<String>, RegistryError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM main.sqlite_master
             WHERE type = 'table' AND name IN ('runs', 'run_totals')",
        )
        .fetch_all(&mut *conn)
        .await?)
    }
    if old_tables(conn).await?.is_empty() {
        return Ok(());
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let old = old_tables(&mut tx).await?;
    let has = |name: &str| old.iter().any(|t| t == name);
    if has("run_totals") {
        sqlx::raw_sql(MOVE_TOTALS).execute(&mut *tx).await?;
    } else if has("runs") {
        sqlx::raw_sql(COUNT_OLD_RUNS).execute(&mut *tx).await?;
    }
    if has("runs") {
        sqlx::raw_sql(MOVE_RUNS).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
