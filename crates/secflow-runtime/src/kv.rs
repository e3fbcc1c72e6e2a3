//! The per-plugin key-value store: one SQLite database per namespace under the host's kv
//! directory, with a byte quota per grant.
//!
//! A namespace is the plugin's *verified* identity, not just its id: an installed plugin's
//! store is keyed by its id and the keys that signed it, a bundled plugin's by its id, and a
//! `--dev` plugin gets a store of its own. So an unsigned plugin that claims an installed
//! plugin's id cannot read or write that plugin's data.
//!
//! Nothing is loaded as a whole: each call is one indexed statement (or one short
//! `BEGIN IMMEDIATE` transaction for writes), values are stored as bytes, and the size is
//! kept in a row updated in the same transaction as the entry, so concurrent invocations
//! (threads or processes) lose nothing and cannot overrun the quota together. Each entry
//! costs its key, its value and [`ENTRY_OVERHEAD`] bytes, so a flood of empty values is not
//! free.

use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Default quota when the capability does not set `max-kib`.
pub const DEFAULT_QUOTA_BYTES: u64 = secflow_manifest::KV_DEFAULT_KIB << 10;
/// Bytes each entry costs on top of its key and value.
pub const ENTRY_OVERHEAD: u64 = 32;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    bytes   INTEGER NOT NULL,
    entries INTEGER NOT NULL
) STRICT;
INSERT OR IGNORE INTO usage (id, bytes, entries) VALUES (0, 0, 0);
";

/// Whose store it is. The path of the database follows from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvNamespace(String);

impl KvNamespace {
    /// A plugin run from its source directory (`--dev`): a store separate from any installed
    /// or bundled plugin with the same id.
    pub fn dev(id: &str) -> KvNamespace {
        KvNamespace(format!("dev/{id}"))
    }

    /// A plugin bundled with (and pinned by) this binary.
    pub fn bundled(id: &str) -> KvNamespace {
        KvNamespace(format!("bundled/{id}"))
    }

    /// An installed plugin, identified by its id and the key ids that signed its grant. An
    /// unsigned (`--dev`) install has a namespace of its own too.
    pub fn installed(id: &str, signer_key_ids: &[String]) -> KvNamespace {
        if signer_key_ids.is_empty() {
            return KvNamespace(format!("installed/{id}/unsigned"));
        }
        let mut keys: Vec<&str> = signer_key_ids.iter().map(String::as_str).collect();
        keys.sort_unstable();
        keys.dedup();
        let digest = Sha256::digest(keys.join("\n").as_bytes());
        KvNamespace(format!("installed/{id}/{}", hex::encode(&digest[..12])))
    }

    /// Every store of an installed plugin, whatever its signers: removed on uninstall and
    /// on a fresh install.
    pub fn installed_root(kv_dir: &Path, id: &str) -> PathBuf {
        kv_dir.join("installed").join(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn path(&self, kv_dir: &Path) -> PathBuf {
        let mut path = kv_dir.to_path_buf();
        for part in self.0.split('/') {
            path.push(part);
        }
        path.set_extension("sqlite");
        path
    }
}

impl std::fmt::Display for KvNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the plugin may use: its namespace and quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvGrant {
    pub namespace: KvNamespace,
    pub quota: u64,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KvFailure {
    #[error("the store would hold {wanted} bytes; its quota is {quota} bytes")]
    Quota { wanted: u64, quota: u64 },
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("store I/O failed: {0}")]
    Io(String),
}

fn io(e: impl std::fmt::Display) -> KvFailure {
    KvFailure::Io(e.to_string())
}

/// The open databases of one runtime, one pool per namespace.
#[derive(Debug, Default)]
pub struct KvStores {
    dir: PathBuf,
    /// One pool per namespace, and the one-time setup of its database (schema, WAL mode)
    /// shared by every invocation: concurrent first connections to a new database would
    /// race to switch it to WAL, and SQLite answers the loser "database is locked".
    open: Mutex<HashMap<KvNamespace, (SqlitePool, Ready)>>,
}

/// Set once a namespace's database has its schema.
type Ready = Arc<tokio::sync::OnceCell<()>>;

impl KvStores {
    pub fn new(dir: PathBuf) -> KvStores {
        KvStores {
            dir,
            open: Mutex::default(),
        }
    }

    /// The store for `grant`; the database is opened (and created) on first use.
    pub fn store(&self, grant: &KvGrant) -> KvStore {
        let (pool, ready) = self
            .open
            .lock()
            .unwrap()
            .entry(grant.namespace.clone())
            .or_insert_with(|| {
                let options = SqliteConnectOptions::new()
                    .filename(grant.namespace.path(&self.dir))
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // Keep the write-ahead log small: it is disk the plugin makes the host
                    // use beyond its quota.
                    .pragma("wal_autocheckpoint", "64")
                    .pragma("journal_size_limit", "262144")
                    .busy_timeout(std::time::Duration::from_secs(30));
                // No idle reaper: it would be a task on whichever tokio runtime opened the
                // pool first.
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .min_connections(0)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_lazy_with(options);
                (pool, Arc::default())
            })
            .clone();
        KvStore {
            pool,
            path: grant.namespace.path(&self.dir),
            quota: grant.quota,
            ready,
        }
    }
}

/// One plugin's store, as its invocations see it.
#[derive(Debug, Clone)]
pub struct KvStore {
    pool: SqlitePool,
    path: PathBuf,
    quota: u64,
    ready: Ready,
}

/// A write transaction that takes the database's write lock at once, so the size read in it
/// is still true when the entry is written.
async fn write_tx(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, KvFailure> {
    let conn: &mut SqliteConnection = conn;
    sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE")
        .await
        .map_err(io)
}

/// Bytes an entry costs.
pub fn entry_cost(key_len: usize, value_len: usize) -> u64 {
    ENTRY_OVERHEAD + key_len as u64 + value_len as u64
}

pub fn check_key(key: &str) -> Result<(), KvFailure> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvFailure::InvalidKey(format!(
            "keys must be 1 to {MAX_KEY_BYTES} bytes; this one is {}",
            key.len()
        )));
    }
    Ok(())
}

impl KvStore {
    pub fn quota(&self) -> u64 {
        self.quota
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, KvFailure> {
        self.ready
            .get_or_try_init(|| async {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut conn = self.pool.acquire().await.map_err(io)?;
                sqlx::raw_sql(SCHEMA)
                    .execute(&mut *conn)
                    .await
                    .map_err(io)?;
                Ok::<(), KvFailure>(())
            })
            .await?;
        self.pool.acquire().await.map_err(io)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        check_key(key)?;
        let mut conn = self.conn().await?;
        let row = sqlx::query("SELECT value FROM entries WHERE key = ?1")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(io)?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    /// Stores `value` under `key`, atomically with the size bookkeeping. A write that would
    /// take the store past its quota is refused and changes nothing; one that does not grow
    /// the store is always allowed (so a plugin whose quota shrank can still clean up).
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvFailure> {
        check_key(key)?;
        let new_cost = entry_cost(key.len(), value.len());
        if new_cost > self.quota {
            return Err(KvFailure::Quota {
                wanted: new_cost,
                quota: self.quota,
            });
        }
        let mut conn = self.conn().await?;
        let mut tx = write_tx(&mut conn).await?;
        let old: Option<i64> =
            sqlx::query_scalar("SELECT length(value) FROM entries WHERE key = ?1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(io)?;
        let used: i64 = sqlx::query_scalar("SELECT bytes FROM usage WHERE id = 0")
            .fetch_one(&mut *tx)
            .await
            .map_err(io)?;
        let old_cost = old.map_or(0, |len| entry_cost(key.len(), len as usize));
        let wanted = (used as u64).saturating_sub(old_cost) + new_cost;
        if new_cost > old_cost && wanted > self.quota {
            return Err(KvFailure::Quota {
                wanted,
                quota: self.quota,
            });
        }
        sqlx::query(
            "INSERT INTO entries (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(io)?;
        sqlx::query("UPDATE usage SET bytes = ?1, entries = entries + ?2 WHERE id = 0")
            .bind(wanted as i64)
            .bind(i64::from(old.is_none()))
            .execute(&mut *tx)
            .await
            .map_err(io)?;
        tx.commit().await.map_err(io)
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvFailure> {
        check_key(key)?;
        let mut conn = self.conn().await?;
        let mut tx = write_tx(&mut conn).await?;
        let old: Option<i64> =
            sqlx::query_scalar("DELETE FROM entries WHERE key = ?1 RETURNING length(value)")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(io)?;
        if let Some(len) = old {
            sqlx::query(
                "UPDATE usage SET bytes = max(bytes - ?1, 0), entries = max(entries - 1, 0)
                 WHERE id = 0",
            )
            .bind(entry_cost(key.len(), len as usize) as i64)
            .execute(&mut *tx)
            .await
            .map_err(io)?;
        }
        tx.commit().await.map_err(io)
    }

    /// Keys starting with `prefix`, in order.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvFailure> {
        let mut conn = self.conn().await?;
        sqlx::query_scalar(
            "SELECT key FROM entries WHERE key >= ?1 AND instr(key, ?1) = 1 ORDER BY key",
        )
        .bind(prefix)
        .fetch_all(&mut *conn)
        .await
        .map_err(io)
    }

    /// Bytes the store holds (entries with their overhead).
    pub async fn used(&self) -> Result<u64, KvFailure> {
        let mut conn = self.conn().await?;
        let used: i64 = sqlx::query_scalar("SELECT bytes FROM usage WHERE id = 0")
            .fetch_one(&mut *conn)
            .await
            .map_err(io)?;
        Ok(used as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(ns: KvNamespace, quota: u64) -> KvGrant {
        KvGrant {
            namespace: ns,
            quota,
        }
    }

    #[tokio::test]
    async fn store_round_trips_binary_values_and_enforces_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let stores = KvStores::new(dir.path().to_path_buf());
        let kv = stores.store(&grant(KvNamespace::dev("p"), 100));
        kv.set("a", &[0, 255, 1]).await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), Some(vec![0, 255, 1]));
        assert_eq!(kv.used().await.unwrap(), ENTRY_OVERHEAD + 1 + 3);
        let err = kv.set("big", &[0; 100]).await.unwrap_err();
        assert!(matches!(err, KvFailure::Quota { quota: 100, .. }), "{err}");
        assert!(matches!(
            kv.set("", &[]).await,
            Err(KvFailure::InvalidKey(_))
        ));
        // Empty values are not free: the overhead fills the quota.
        kv.set("b", &[]).await.unwrap();
        assert!(matches!(
            kv.set("c", &[]).await,
            Err(KvFailure::Quota { .. })
        ));
        kv.delete("b").await.unwrap();
        kv.set("c", &[]).await.unwrap();
        assert_eq!(kv.list_keys("").await.unwrap(), ["a", "c"]);
        assert_eq!(kv.list_keys("c").await.unwrap(), ["c"]);
        // The value is stored as bytes, not as a JSON array.
        let raw = std::fs::read(dir.path().join("dev/p.sqlite")).unwrap();
        assert!(!raw.windows(7).any(|w| w == b"[0,255,"), "stored as a blob");
    }

    #[tokio::test]
    async fn namespaces_are_separate_databases() {
        let dir = tempfile::tempdir().unwrap();
        let stores = KvStores::new(dir.path().to_path_buf());
        let installed = stores.store(&grant(KvNamespace::installed("p", &["k1".into()]), 1 << 20));
        installed.set("secret", b"installed").await.unwrap();
        for other in [
            KvNamespace::dev("p"),
            KvNamespace::bundled("p"),
            KvNamespace::installed("p", &[]),
            KvNamespace::installed("p", &["k2".into()]),
        ] {
            let kv = stores.store(&grant(other.clone(), 1 << 20));
            assert_eq!(kv.get("secret").await.unwrap(), None, "{other}");
        }
        assert_eq!(
            KvNamespace::installed("p", &["b".into(), "a".into()]),
            KvNamespace::installed("p", &["a".into(), "b".into()])
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_lose_nothing_and_share_one_quota() {
        let dir = tempfile::tempdir().unwrap();
        let stores = Arc::new(KvStores::new(dir.path().to_path_buf()));
        let g = grant(KvNamespace::dev("p"), 16 * entry_cost(2, 10));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let kv = stores.store(&g);
                tokio::spawn(async move { kv.set(&format!("{:02}", i), &[7; 10]).await })
            })
            .collect();
        let mut stored = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => stored += 1,
                Err(KvFailure::Quota { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(stored, 16, "exactly the quota's worth of writes succeed");
        let kv = stores.store(&g);
        assert_eq!(kv.list_keys("").await.unwrap().len(), 16);
        assert_eq!(kv.used().await.unwrap(), 16 * entry_cost(2, 10));
    }
}
