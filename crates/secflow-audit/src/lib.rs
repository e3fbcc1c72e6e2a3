//! The audit log: every security-relevant event, append-only and provably intact.
//!
//! Events live in SQLite (WAL, `synchronous=FULL`: a committed event survives a crash or a
//! power cut). Each event's leaf hash covers its own fields and the hash of the event before
//! it, so the events form a hash chain; the leaf hashes also form an RFC 9162 Merkle tree
//! whose root the host signs with its Ed25519 key as a checkpoint (tree size, root, time).
//! Triggers make the database refuse `UPDATE` and `DELETE` on audit rows, and
//! [`AuditLog::verify`] proves the log intact offline: it names the first entry that was
//! edited, deleted or reordered, and detects truncation and rewriting against a checkpoint
//! kept elsewhere.
//!
//! Appends are batched: [`AuditLog::append_batch`] writes any number of events in one
//! transaction with one durable commit, which is how an invocation-heavy workload reaches
//! tens of thousands of events per second.

pub mod merkle;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use merkle::{Frontier, Hash};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};
use std::path::Path;
use std::str::FromStr;
use tokio::sync::Mutex;

/// The audit vocabulary: every kind of event a SecFlow front end writes. Stored as its
/// dotted name (`plugin.install`), so the log stays readable and verifiable by tools that
/// know nothing of this enum; writers and readers (`stats`) use the enum, never a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// A package's signatures were checked against the trust store.
    SignatureVerify,
    /// The Cedar policies were asked (install, upgrade, enable, run).
    PolicyDecision,
    PluginInstall,
    PluginUpgrade,
    /// The same payload stored again with other signatures.
    PluginResign,
    PluginUninstall,
    PluginEnable,
    PluginDisable,
    /// Lifted from quarantine.
    PluginRelease,
    PluginQuarantine,
    /// A component was compiled (or taken from the cache) and linked into the sandbox.
    PluginLoad,
    /// One run of a plugin (`run`, or one plugin's share of a scan).
    PluginInvoke,
    /// A run failed without breaking a sandbox rule.
    PluginError,
    /// A run broke a sandbox rule (a limit, a denied capability, invalid output).
    SandboxViolation,
    ScanRun,
    /// A scan job was queued through the API (who, what target, which options).
    ScanSubmit,
    /// A queued scan job was cancelled through the API.
    ScanCancel,
    /// A finished scan job and its results were deleted through the API.
    ScanDelete,
    TrustAdd,
    TrustRemove,
    TrustThreshold,
    TrustRotate,
    TrustRevoke,
    TrustImport,
    /// An API token was created (its id and role; never the secret).
    TokenCreate,
    TokenRevoke,
    /// An API request was refused: no or a bad token, or the API policies said no.
    ApiDeny,
    /// Marketplace: a publisher, its namespaces or its keys changed.
    MarketPublisher,
    /// Marketplace: an upload was vetted (approved at once, held for review, or refused).
    MarketPublish,
    /// Marketplace: a reviewer approved (and the marketplace countersigned) or rejected.
    MarketReview,
    /// Marketplace: a version was yanked or un-yanked.
    MarketYank,
    /// Marketplace: a version's digest was put on the signed revocation list.
    MarketRevoke,
    /// Marketplace: an install receipt was counted, or a rating posted or moderated.
    MarketReceipt,
    /// `secflow proxy`: a filter's decision that was not a plain allow (block, modify, a
    /// shadow hit, an error or a timeout), with the route, the filter and the mode.
    ProxyDecision,
    /// `secflow proxy`: a configuration was loaded (at start or on reload) or a reload was
    /// refused, with the configuration's digest and its routes' filters.
    ProxyConfig,
}

impl Action {
    pub const ALL: [Action; 35] = [
        Action::SignatureVerify,
        Action::PolicyDecision,
        Action::PluginInstall,
        Action::PluginUpgrade,
        Action::PluginResign,
        Action::PluginUninstall,
        Action::PluginEnable,
        Action::PluginDisable,
        Action::PluginRelease,
        Action::PluginQuarantine,
        Action::PluginLoad,
        Action::PluginInvoke,
        Action::PluginError,
        Action::SandboxViolation,
        Action::ScanRun,
        Action::ScanSubmit,
        Action::ScanCancel,
        Action::ScanDelete,
        Action::TrustAdd,
        Action::TrustRemove,
        Action::TrustThreshold,
        Action::TrustRotate,
        Action::TrustRevoke,
        Action::TrustImport,
        Action::TokenCreate,
        Action::TokenRevoke,
        Action::ApiDeny,
        Action::MarketPublisher,
        Action::MarketPublish,
        Action::MarketReview,
        Action::MarketYank,
        Action::MarketRevoke,
        Action::MarketReceipt,
        Action::ProxyDecision,
        Action::ProxyConfig,
    ];

    /// The name stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SignatureVerify => "signature.verify",
            Action::PolicyDecision => "policy.decision",
            Action::PluginInstall => "plugin.install",
            Action::PluginUpgrade => "plugin.upgrade",
            Action::PluginResign => "plugin.resign",
            Action::PluginUninstall => "plugin.uninstall",
            Action::PluginEnable => "plugin.enable",
            Action::PluginDisable => "plugin.disable",
            Action::PluginRelease => "plugin.release",
            Action::PluginQuarantine => "plugin.quarantine",
            Action::PluginLoad => "plugin.load",
            Action::PluginInvoke => "plugin.invoke",
            Action::PluginError => "plugin.error",
            Action::SandboxViolation => "sandbox.violation",
            Action::ScanRun => "scan.run",
            Action::ScanSubmit => "scan.submit",
            Action::ScanCancel => "scan.cancel",
            Action::ScanDelete => "scan.delete",
            Action::TrustAdd => "trust.add",
            Action::TrustRemove => "trust.remove",
            Action::TrustThreshold => "trust.threshold",
            Action::TrustRotate => "trust.rotate",
            Action::TrustRevoke => "trust.revoke",
            Action::TrustImport => "trust.import",
            Action::TokenCreate => "token.create",
            Action::TokenRevoke => "token.revoke",
            Action::ApiDeny => "api.deny",
            Action::MarketPublisher => "market.publisher",
            Action::MarketPublish => "market.publish",
            Action::MarketReview => "market.review",
            Action::MarketYank => "market.yank",
            Action::MarketRevoke => "market.revoke",
            Action::MarketReceipt => "market.receipt",
            Action::ProxyDecision => "proxy.decision",
            Action::ProxyConfig => "proxy.config",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Action, String> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not an audit action"))
    }
}

impl Event {
    /// An event of `action` by `actor`; fill the rest with struct update syntax.
    pub fn new(actor: impl Into<String>, action: Action) -> Event {
        Event {
            actor: actor.into(),
            action: action.as_str().to_string(),
            ..Event::default()
        }
    }

    /// The typed action, when the stored name is one of this version's vocabulary.
    pub fn action(&self) -> Option<Action> {
        self.action.parse().ok()
    }
}

/// What happened, as the caller reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Who or what acted: `cli:alice`, `scan`, `api:token-3`.
    pub actor: String,
    /// `plugin.install`, `signature.verify`, `policy.decision`, `plugin.invoke`,
    /// `sandbox.violation`, `plugin.quarantine`, `trust.add`, ...
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRef>,
    /// `allow`, `deny`, `ok`, `error`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default)]
    pub reason: String,
    /// Anything else (durations, fuel, policy ids), as a JSON value.
    #[serde(default)]
    pub details: serde_json::Value,
}

/// The plugin an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRef {
    pub id: String,
    pub version: String,
    pub digest: String,
}

/// An event as stored: numbered, timed and chained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// 1-based, contiguous.
    pub seq: u64,
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
    /// Hash of the previous entry (zeros for the first), hex.
    pub prev_hash: String,
    /// This entry's leaf hash, hex.
    pub hash: String,
}

/// A signed statement of the log's size and Merkle root. Keep copies outside the host: a
/// log cut back below a kept checkpoint's size, or rewritten, no longer matches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: u64,
    /// Hex SHA-256 Merkle root.
    pub root: String,
    pub time: String,
    /// Hex of the first 16 bytes of SHA-256 of the signing public key.
    pub key_id: String,
    /// Hex Ed25519 signature over [`Checkpoint::signed_text`].
    pub signature: String,
}

impl Checkpoint {
    /// The exact text signed: versioned, one field per line.
    pub fn signed_text(&self) -> String {
        format!(
            "secflow-audit checkpoint v1\n{}\n{}\n{}\n{}\n",
            self.origin, self.tree_size, self.root, self.time
        )
    }

    /// Checks the signature with the host's public key.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), String> {
        if self.key_id != key_id(key) {
            return Err(format!(
                "checkpoint at size {} was signed by key {}, not by this host's key {}",
                self.tree_size,
                self.key_id,
                key_id(key)
            ));
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("checkpoint at size {}: malformed signature", self.tree_size))?;
        key.verify_strict(
            self.signed_text().as_bytes(),
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| {
            format!(
                "checkpoint at size {}: the signature does not verify (forged or altered)",
                self.tree_size
            )
        })
    }

    /// Reads a checkpoint file (JSON), naming the file on error.
    pub fn read(path: &Path) -> Result<Checkpoint, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuditError::Input {
            message: format!("cannot read checkpoint {}: {e}", path.display()),
        })?;
        serde_json::from_str(&text).map_err(|e| AuditError::Input {
            message: format!(
                "{} is not a SecFlow audit checkpoint ({e}); write one with `secflow audit checkpoint -o FILE`",
                path.display()
            ),
        })
    }
}

/// Hex of the first 16 bytes of SHA-256 of a public key (the trust store's key id form).
pub fn key_id(key: &VerifyingKey) -> String {
    secflow_io::key_id(key.as_bytes())
}

/// Why the log could not be used, or is not intact.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit database: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("{message}")]
    Input { message: String },
    /// The log is not intact; `seq` names the first entry found wrong, when there is one.
    #[error("audit log tampered: {message}")]
    Tampered { seq: Option<u64>, message: String },
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    /// Hex Merkle root over all entries.
    pub root: String,
    /// Stored checkpoints whose signature and root matched.
    pub checkpoints: usize,
    /// Whether an external checkpoint was given and matched.
    pub external_checkpoint: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_events (
    seq INTEGER PRIMARY KEY NOT NULL,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    plugin_id TEXT,
    plugin_version TEXT,
    plugin_digest TEXT,
    decision TEXT,
    reason TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_plugin ON audit_events(plugin_id, seq);
-- The security dashboard's recent violations, refusals and denials, and the counts of
-- `stats`, read by action without scanning the whole log.
CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events(action, seq);
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused'); END;
-- The Merkle frontier after the last append (one row), so that opening the log reads
-- O(log n) hashes instead of every leaf. Only a cache: it is used when its size and last
-- hash match the newest event, rebuilt from the events otherwise, and `verify` never
-- trusts it (a forged frontier makes the next checkpoint disagree with the events).
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    size INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    roots TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    tree_size INTEGER PRIMARY KEY NOT NULL,
    body TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: DELETE refused'); END;
";

/// Rows per INSERT statement (12 parameters each; SQLite allows 32,766 per statement).
const INSERT_CHUNK: usize = 128;

/// The name checkpoints carry, so a checkpoint of one log is not mistaken for another's.
pub const ORIGIN: &str = "secflow-audit";

struct Head {
    frontier: Frontier,
    last_hash: Hash,
}

/// An open audit log.
pub struct AuditLog {
    conn: std::sync::Arc<Mutex<(SqliteConnection, Head)>>,
    key: SigningKey,
    /// Appends for the writer task (group commit, see [`AuditLog::append_batch`]).
    queue: tokio::sync::mpsc::UnboundedSender<Pending>,
}

/// The most batches one commit takes (bounds a transaction's size under a flood).
const MAX_GROUP: usize = 1024;

/// One caller's events waiting to be written, and where to send their entries.
struct Pending {
    events: Vec<Event>,
    done: tokio::sync::oneshot::Sender<Result<Vec<Entry>, String>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("key_id", &key_id(&self.key.verifying_key()))
            .finish_non_exhaustive()
    }
}

/// The bytes a leaf hash covers: every stored field, length-prefixed, then the previous
/// entry's hash, so no two different entries (or chains) hash alike.
fn leaf_data(row: &StoredRow, prev: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + row.details.len());
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    field(b"secflow-audit/1");
    field(&row.seq.to_le_bytes());
    for text in [
        &row.time,
        &row.actor,
        &row.action,
        row.plugin_id.as_deref().unwrap_or("\u{0}none"),
        row.plugin_version.as_deref().unwrap_or("\u{0}none"),
        row.plugin_digest.as_deref().unwrap_or("\u{0}none"),
        row.decision.as_deref().unwrap_or("\u{0}none"),
        &row.reason,
        &row.details,
    ] {
        field(text.as_bytes());
    }
    field(prev);
    out
}

/// A row exactly as stored (the verifier hashes what is in the database, never a
/// re-serialization of it).
#[derive(Debug, Clone)]
struct StoredRow {
    seq: u64,
    time: String,
    actor: String,
    action: String,
    plugin_id: Option<String>,
    plugin_version: Option<String>,
    plugin_digest: Option<String>,
    decision: Option<String>,
    reason: String,
    details: String,
    prev_hash: String,
    hash: String,
}

impl StoredRow {
    fn from_row(r: &sqlx::sqlite::SqliteRow) -> Result<StoredRow, sqlx::Error> {
        Ok(StoredRow {
            seq: r.try_get::<i64, _>("seq")? as u64,
            time: r.try_get("time")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            plugin_id: r.try_get("plugin_id")?,
            plugin_version: r.try_get("plugin_version")?,
            plugin_digest: r.try_get("plugin_digest")?,
            decision: r.try_get("decision")?,
            reason: r.try_get("reason")?,
            details: r.try_get("details")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    }

    fn into_entry(self) -> Entry {
        let details = serde_json::from_str(&self.details).unwrap_or(serde_json::Value::Null);
        self.into_entry_with(details)
    }

    /// The entry of a row just written, with the details it was written from (parsing the
    /// text back would only give the same value, at a cost per appended event).
    fn into_entry_with(self, details: serde_json::Value) -> Entry {
        let plugin = self.plugin_id.map(|id| PluginRef {
            id,
            version: self.plugin_version.unwrap_or_default(),
            digest: self.plugin_digest.unwrap_or_default(),
        });
        Entry {
            seq: self.seq,
            time: self.time,
            event: Event {
                actor: self.actor,
                action: self.action,
                plugin,
                decision: self.decision,
                reason: self.reason,
                details,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Which entries [`AuditLog::entries`] returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub plugin: Option<String>,
    /// Entries at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Entries with a larger sequence number (for `--follow`).
    pub after_seq: Option<u64>,
    pub limit: Option<u64>,
}

impl AuditLog {
    /// Opens (creating if needed) the log in the SQLite file at `path`; `key` signs
    /// checkpoints.
    pub async fn open(path: &Path, key: SigningKey) -> Result<AuditLog, AuditError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let mut conn = SqliteConnection::connect_with(&options).await?;
        sqlx::raw_sql(SCHEMA).execute(&mut conn).await?;
        let head = load_head(&mut conn).await?;
        let conn = std::sync::Arc::new(Mutex::new((conn, head)));
        // The writer: takes whatever appends are queued, commits them together, answers
        // each caller. A caller's cancelled request cannot stop it halfway through a
        // transaction; it ends when the log is dropped.
        let (queue, mut incoming) = tokio::sync::mpsc::unbounded_channel::<Pending>();
        let writer_conn = conn.clone();
        tokio::spawn(async move {
            // Waits for one, then takes whatever else is queued, up to MAX_GROUP.
            let mut batch = Vec::new();
            while incoming.recv_many(&mut batch, MAX_GROUP).await > 0 {
                // Lets the tasks that are ready run first: under load, the appends they are
                // about to make join this commit instead of each waiting for one of its own.
                for _ in 0..2 {
                    tokio::task::yield_now().await;
                    while batch.len() < MAX_GROUP
                        && let Ok(pending) = incoming.try_recv()
                    {
                        batch.push(pending);
                    }
                }
                let batch = std::mem::take(&mut batch);
                let mut guard = writer_conn.lock().await;
                let (conn, head) = &mut *guard;
                commit_group(conn, head, batch).await;
            }
        });
        Ok(AuditLog { conn, key, queue })
    }

    /// The host's public key, for verifying checkpoints elsewhere.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Appends one event with a durable commit.
    pub async fn append(&self, event: Event) -> Result<Entry, AuditError> {
        Ok(self.append_batch(vec![event]).await?.remove(0))
    }

    /// Appends events in order, contiguously, with a durable commit before it returns.
    ///
    /// Group commit: a writer task takes every append queued while its previous commit
    /// ran and writes them in one transaction (one fsync for all of them), then hands each
    /// caller its entries. A single caller pays one commit as before; many concurrent
    /// callers share commits instead of queueing behind one fsync each. A failed commit
    /// fails every batch in it, and none of them is written.
    pub async fn append_batch(&self, events: Vec<Event>) -> Result<Vec<Entry>, AuditError> {
        self.enqueue_batch(events)?.await
    }

    /// Queues `events` for the writer's next commit now (in order with every append
    /// queued before and after) and returns the wait for that commit: a caller that need
    /// not hold its answer for the fsync can await it elsewhere.
    pub fn enqueue_batch(
        &self,
        events: Vec<Event>,
    ) -> Result<
        impl std::future::Future<Output = Result<Vec<Entry>, AuditError>> + Send + 'static,
        AuditError,
    > {
        let (done, result) = tokio::sync::oneshot::channel();
        self.queue
            .send(Pending { events, done })
            .map_err(|_| AuditError::Input {
                message: "the audit writer has stopped; the events were not recorded".into(),
            })?;
        Ok(async move {
            match result.await {
                Ok(Ok(entries)) => Ok(entries),
                Ok(Err(message)) => Err(AuditError::Input { message }),
                // The writer was dropped mid-commit (its task cancelled): nothing was promised.
                Err(_) => Err(AuditError::Input {
                    message: "the audit commit was cancelled; the events were not recorded".into(),
                }),
            }
        })
    }

    /// Signs and stores a checkpoint of the log as it is now.
    pub async fn checkpoint(&self) -> Result<Checkpoint, AuditError> {
        let mut guard = self.conn.lock().await;
        let (conn, head) = &mut *guard;
        // Another process may have appended since we last looked.
        *head = load_head(conn).await?;
        let mut cp = Checkpoint {
            origin: ORIGIN.into(),
            tree_size: head.frontier.size(),
            root: hex::encode(head.frontier.root()),
            time: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            key_id: key_id(&self.key.verifying_key()),
            signature: String::new(),
        };
        cp.signature = hex::encode(self.key.sign(cp.signed_text().as_bytes()).to_bytes());
        let body = serde_json::to_string(&cp).expect("checkpoint serializes");
        sqlx::query("INSERT OR IGNORE INTO audit_checkpoints (tree_size, body) VALUES (?, ?)")
            .bind(cp.tree_size as i64)
            .bind(body)
            .execute(&mut *conn)
            .await?;
        Ok(cp)
    }

    /// Entries in order, filtered.
    pub async fn entries(&self, filter: &Filter) -> Result<Vec<Entry>, AuditError> {
        let mut guard = self.conn.lock().await;
        let (conn, _) = &mut *guard;
        let rows = sqlx::query(
            "SELECT * FROM audit_events
             WHERE (?1 IS NULL OR plugin_id = ?1) AND (?2 IS NULL OR time >= ?2) AND seq > ?3
             ORDER BY seq LIMIT ?4",
        )
        .bind(filter.plugin.as_deref())
        .bind(filter.since.as_deref())
        .bind(filter.after_seq.unwrap_or(0) as i64)
        .bind(filter.limit.map_or(-1, |l| l as i64))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| Ok(StoredRow::from_row(r)?.into_entry()))
            .collect()
    }

    /// The newest `limit` entries with `action` (and `decision`, when given), newest first.
    pub async fn recent(
        &self,
        action: Action,
        decision: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Entry>, AuditError> {
        let mut guard = self.conn.lock().await;
        let (conn, _) = &mut *guard;
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE action = ?1 AND (?2 IS NULL OR decision = ?2)
             ORDER BY seq DESC LIMIT ?3",
        )
        .bind(action.as_str())
        .bind(decision)
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| Ok(StoredRow::from_row(r)?.into_entry()))
            .collect()
    }

    /// Counts of events per action, and the last entry (for `secflow stats`).
    pub async fn summary(&self) -> Result<(Vec<(String, u64)>, Option<Entry>), AuditError> {
        let mut guard = self.conn.lock().await;
        let (conn, _) = &mut *guard;
        let counts = sqlx::query(
            "SELECT action, COUNT(*) AS n FROM audit_events GROUP BY action ORDER BY action",
        )
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("action")?, r.try_get::<i64, _>("n")? as u64)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let last = sqlx::query("SELECT * FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| StoredRow::from_row(&r).map(StoredRow::into_entry))
            .transpose()?;
        Ok((counts, last))
    }

    /// How many events have `action` (and `decision`, when given).
    pub async fn count(&self, action: Action, decision: Option<&str>) -> Result<u64, AuditError> {
        let action = action.as_str();
        let mut guard = self.conn.lock().await;
        let (conn, _) = &mut *guard;
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = ?1 AND (?2 IS NULL OR decision = ?2)",
        )
        .bind(action)
        .bind(decision)
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
        Ok(n as u64)
    }

    /// How many different plugins (id and digest) appear in events with `action`.
    pub async fn distinct_plugins(&self, action: Action) -> Result<u64, AuditError> {
        let action = action.as_str();
        let mut guard = self.conn.lock().await;
        let (conn, _) = &mut *guard;
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT plugin_id, plugin_digest FROM audit_events WHERE action = ? AND plugin_id IS NOT NULL)",
        )
        .bind(action)
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
        Ok(n as u64)
    }

    /// Proves the log intact: contiguous sequence numbers, every entry's hash recomputed
    /// from its stored fields and chained to the one before, every stored checkpoint's
    /// signature and root, and `external` (a checkpoint kept elsewhere) if given. `key` is
    /// the host public key the checkpoints must verify under. Returns the first problem.
    pub async fn verify(
        &self,
        key: &VerifyingKey,
        external: Option<&Checkpoint>,
    ) -> Result<VerifyReport, AuditError> {
        let mut guard = self.conn.lock().await;
        let (conn, _) = &mut *guard;
        let rows = sqlx::query("SELECT * FROM audit_events ORDER BY seq")
            .fetch_all(&mut *conn)
            .await?;
        let mut checkpoints: Vec<Checkpoint> = Vec::new();
        for r in sqlx::query("SELECT body FROM audit_checkpoints ORDER BY tree_size")
            .fetch_all(&mut *conn)
            .await?
        {
            let body: String = r.try_get("body")?;
            checkpoints.push(
                serde_json::from_str(&body).map_err(|e| AuditError::Tampered {
                    seq: None,
                    message: format!("a stored checkpoint is not readable: {e}"),
                })?,
            );
        }
        drop(guard);

        let tampered = |seq: Option<u64>, message: String| AuditError::Tampered { seq, message };
        let mut prev: Hash = [0; 32];
        let mut frontier = Frontier::new();
        // Roots at every checkpoint size, filled in as the walk passes it.
        let mut wanted: Vec<(u64, String, &'static str)> = checkpoints
            .iter()
            .map(|c| (c.tree_size, c.root.clone(), "stored"))
            .chain(external.map(|c| (c.tree_size, c.root.clone(), "external")))
            .collect();
        wanted.sort_by_key(|w| w.0);
        let mut next_wanted = 0;
        let check_roots = |frontier: &Frontier, next: &mut usize| -> Result<(), AuditError> {
            while *next < wanted.len() && wanted[*next].0 == frontier.size() {
                let (size, root, which) = &wanted[*next];
                if hex::encode(frontier.root()) != *root {
                    return Err(AuditError::Tampered {
                        seq: None,
                        message: format!(
                            "the first {size} entries do not match the {which} checkpoint at size {size}: an entry at or before #{size} was changed, or the log was rewritten"
                        ),
                    });
                }
                *next += 1;
            }
            Ok(())
        };
        check_roots(&frontier, &mut next_wanted)?;
        for (i, r) in rows.iter().enumerate() {
            let row = StoredRow::from_row(r)?;
            let expected = i as u64 + 1;
            if row.seq != expected {
                return Err(tampered(
                    Some(expected),
                    format!(
                        "entry #{expected} is missing (the next stored entry is #{}): deleted or reordered",
                        row.seq
                    ),
                ));
            }
            if row.prev_hash != hex::encode(prev) {
                return Err(tampered(
                    Some(row.seq),
                    format!(
                        "entry #{} does not chain to entry #{}: entries were removed, reordered or edited",
                        row.seq,
                        row.seq - 1
                    ),
                ));
            }
            let leaf = merkle::leaf_hash(&leaf_data(&row, &prev));
            if row.hash != hex::encode(leaf) {
                return Err(tampered(
                    Some(row.seq),
                    format!(
                        "entry #{} ({} by {}) does not match its hash: it was edited",
                        row.seq, row.action, row.actor
                    ),
                ));
            }
            frontier.push(leaf);
            prev = leaf;
            check_roots(&frontier, &mut next_wanted)?;
        }
        let size = frontier.size();
        if let Some(&(cp_size, _, which)) = wanted.get(next_wanted) {
            return Err(tampered(
                Some(size + 1),
                format!(
                    "the log has {size} entries but the {which} checkpoint covers {cp_size}: it was truncated after entry #{size}"
                ),
            ));
        }
        for cp in checkpoints.iter().chain(external) {
            if cp.origin != ORIGIN {
                return Err(tampered(
                    None,
                    format!("checkpoint origin `{}` is not `{ORIGIN}`", cp.origin),
                ));
            }
            cp.verify_signature(key).map_err(|m| tampered(None, m))?;
        }
        Ok(VerifyReport {
            entries: size,
            root: hex::encode(frontier.root()),
            checkpoints: checkpoints.len(),
            external_checkpoint: external.is_some(),
        })
    }
}

/// The newest event's sequence number and hash: O(log n), `seq` being the rowid.
async fn newest(conn: &mut SqliteConnection) -> Result<Option<(u64, String)>, AuditError> {
    let row = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get::<i64, _>("seq")? as u64, r.try_get("hash")?)),
        None => None,
    })
}

fn parse_hash(hex_hash: &str) -> Option<Hash> {
    hex::decode(hex_hash).ok()?.try_into().ok()
}

/// The chain's end: from the stored frontier when it matches the newest event, otherwise
/// rebuilt from every event's hash.
async fn load_head(conn: &mut SqliteConnection) -> Result<Head, AuditError> {
    let newest = newest(conn).await?;
    let stored = sqlx::query("SELECT size, last_hash, roots FROM audit_head WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    if let (Some((seq, hash)), Some(row)) = (&newest, stored) {
        let size = row.try_get::<i64, _>("size")? as u64;
        let last: String = row.try_get("last_hash")?;
        let roots: String = row.try_get("roots")?;
        let roots: Option<Vec<Hash>> = roots
            .split(',')
            .filter(|r| !r.is_empty())
            .map(parse_hash)
            .collect();
        if size == *seq
            && last == *hash
            && let (Some(roots), Some(last_hash)) = (roots, parse_hash(&last))
            && let Some(frontier) = Frontier::from_roots(size, &roots)
        {
            return Ok(Head {
                frontier,
                last_hash,
            });
        }
    }
    if newest.is_none() {
        return Ok(Head {
            frontier: Frontier::new(),
            last_hash: [0u8; 32],
        });
    }
    rebuild_head(conn).await
}

async fn rebuild_head(conn: &mut SqliteConnection) -> Result<Head, AuditError> {
    let mut frontier = Frontier::new();
    let mut last_hash = [0u8; 32];
    let rows = sqlx::query("SELECT hash FROM audit_events ORDER BY seq")
        .fetch_all(&mut *conn)
        .await?;
    for r in rows {
        let hex_hash: String = r.try_get("hash")?;
        let hash = parse_hash(&hex_hash).ok_or_else(|| AuditError::Tampered {
            seq: Some(frontier.size() + 1),
            message: format!("entry #{} has a malformed hash", frontier.size() + 1),
        })?;
        frontier.push(hash);
        last_hash = hash;
    }
    Ok(Head {
        frontier,
        last_hash,
    })
}

/// Stores the frontier after an append, in the append's transaction.
async fn store_head(conn: &mut SqliteConnection, head: &Head) -> Result<(), AuditError> {
    let roots: Vec<String> = head.frontier.roots().map(hex::encode).collect();
    sqlx::query(
        "INSERT INTO audit_head (id, size, last_hash, roots) VALUES (1, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET size = excluded.size, last_hash = excluded.last_hash, roots = excluded.roots",
    )
    .bind(head.frontier.size() as i64)
    .bind(hex::encode(head.last_hash))
    .bind(roots.join(","))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes queued batches in one transaction and answers each caller.
async fn commit_group(conn: &mut SqliteConnection, head: &mut Head, batch: Vec<Pending>) {
    let sizes: Vec<usize> = batch.iter().map(|p| p.events.len()).collect();
    let mut events = Vec::with_capacity(sizes.iter().sum());
    let mut waiters = Vec::with_capacity(batch.len());
    for p in batch {
        events.extend(p.events);
        waiters.push(p.done);
    }
    let outcome: Result<Vec<Entry>, AuditError> = async {
        // The write lock first, so another process appending at the same time waits and
        // our view of the chain's end is current.
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        match append_locked(conn, head, events).await {
            Ok((entries, new_head)) => {
                sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
                *head = new_head;
                Ok(entries)
            }
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                Err(e)
            }
        }
    }
    .await;
    match outcome {
        Ok(entries) => {
            let mut entries = entries.into_iter();
            for (done, n) in waiters.into_iter().zip(sizes) {
                let _ = done.send(Ok(entries.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for done in waiters {
                let _ = done.send(Err(message.clone()));
            }
        }
    }
}

async fn append_locked(
    conn: &mut SqliteConnection,
    head: &Head,
    events: Vec<Event>,
) -> Result<(Vec<Entry>, Head), AuditError> {
    // Another process may have appended since this handle last wrote.
    let stale = match newest(conn).await? {
        Some((seq, hash)) => seq != head.frontier.size() || hash != hex::encode(head.last_hash),
        None => head.frontier.size() != 0,
    };
    let fresh;
    let head = if stale {
        fresh = load_head(conn).await?;
        &fresh
    } else {
        head
    };
    let mut frontier = head.frontier.clone();
    let mut prev = head.last_hash;
    let time = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let mut rows = Vec::with_capacity(events.len());
    let mut details = Vec::with_capacity(events.len());
    for event in events {
        let mut row = StoredRow {
            seq: frontier.size() + 1,
            time: time.clone(),
            plugin_id: event.plugin.as_ref().map(|p| p.id.clone()),
            plugin_version: event.plugin.as_ref().map(|p| p.version.clone()),
            plugin_digest: event.plugin.as_ref().map(|p| p.digest.clone()),
            actor: event.actor,
            action: event.action,
            decision: event.decision,
            reason: event.reason,
            details: event.details.to_string(),
            prev_hash: hex::encode(prev),
            hash: String::new(),
        };
        let leaf = merkle::leaf_hash(&leaf_data(&row, &prev));
        row.hash = hex::encode(leaf);
        frontier.push(leaf);
        prev = leaf;
        rows.push(row);
        details.push(event.details);
    }
    // Many rows per statement: each statement is a round trip to SQLite's worker thread,
    // which costs more than hashing an event.
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO audit_events (seq, time, actor, action, plugin_id, plugin_version, plugin_digest, decision, reason, details, prev_hash, hash) VALUES ",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "" } else { "," });
            sql.push_str("(?,?,?,?,?,?,?,?,?,?,?,?)");
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = query
                .bind(row.seq as i64)
                .bind(&row.time)
                .bind(&row.actor)
                .bind(&row.action)
                .bind(&row.plugin_id)
                .bind(&row.plugin_version)
                .bind(&row.plugin_digest)
                .bind(&row.decision)
                .bind(&row.reason)
                .bind(&row.details)
                .bind(&row.prev_hash)
                .bind(&row.hash);
        }
        query.execute(&mut *conn).await?;
    }
    let head = Head {
        frontier,
        last_hash: prev,
    };
    store_head(conn, &head).await?;
    let entries = rows
        .into_iter()
        .zip(details)
        .map(|(row, details)| row.into_entry_with(details))
        .collect();
    Ok((entries, head))
}

/// Parses a hex public key (64 hex characters).
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, AuditError> {
    hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| AuditError::Input {
            message: "not an Ed25519 public key (64 hex characters)".into(),
        })
}

impl FromStr for Checkpoint {
    type Err = AuditError;
    fn from_str(s: &str) -> Result<Checkpoint, AuditError> {
        serde_json::from_str(s).map_err(|e| AuditError::Input {
            message: format!("not a SecFlow audit checkpoint: {e}"),
        })
    }
}
