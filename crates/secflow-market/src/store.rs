//! The marketplace's database (`market/market.db`, SQLite through sqlx): publishers and
//! their namespaces and keys, versions with their vetting reports and review state,
//! install receipts, ratings, and the signed index's version counter.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS publishers (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS namespaces (
    prefix TEXT PRIMARY KEY,
    publisher TEXT NOT NULL REFERENCES publishers(name),
    granted_at INTEGER NOT NULL,
    granted_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS publisher_keys (
    key_id TEXT PRIMARY KEY,
    publisher TEXT NOT NULL REFERENCES publishers(name),
    public_key TEXT NOT NULL,
    name TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    added_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    publisher TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    upload_sha256 TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    categories TEXT NOT NULL,
    tags TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    dependencies TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    report TEXT NOT NULL,
    decided_by TEXT,
    decided_at INTEGER,
    decision_reason TEXT,
    yanked_at INTEGER,
    yank_reason TEXT,
    revoked_at INTEGER,
    revoke_reason TEXT,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (plugin_id, version)
);
CREATE INDEX IF NOT EXISTS versions_by_state ON versions (state);
CREATE TABLE IF NOT EXISTS installs (
    host_id TEXT NOT NULL,
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (host_id, plugin_id, version)
);
CREATE TABLE IF NOT EXISTS ratings (
    host_id TEXT NOT NULL,
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    stars INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
    text TEXT NOT NULL,
    at INTEGER NOT NULL,
    hidden_at INTEGER,
    hidden_by TEXT,
    hidden_reason TEXT,
    PRIMARY KEY (host_id, plugin_id)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for a reviewer.
    Pending,
    /// Approved (by policy or a reviewer) and countersigned.
    Approved,
    Rejected,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "approved" => State::Approved,
            "rejected" => State::Rejected,
            _ => State::Pending,
        }
    }
}

/// One stored version.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionRow {
    pub plugin_id: String,
    pub version: String,
    pub publisher: String,
    /// Payload digest (what signatures and revocations name).
    pub sha256: String,
    /// SHA-256 of the package file as uploaded (publisher signatures only).
    pub upload_sha256: String,
    /// SHA-256 of the file served: the countersigned package once approved.
    pub file_sha256: String,
    pub size: u64,
    pub kind: String,
    pub name: String,
    pub description: String,
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    /// The declared capabilities (the manifest's `[capabilities]`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub capabilities: serde_json::Value,
    pub dependencies: std::collections::BTreeMap<String, String>,
    pub state: State,
    pub decided_by: Option<String>,
    pub decided_at: Option<u64>,
    pub decision_reason: Option<String>,
    pub yanked_at: Option<u64>,
    pub yank_reason: Option<String>,
    pub revoked_at: Option<u64>,
    pub revoke_reason: Option<String>,
    pub published_at: u64,
}

/// A rating as shown.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RatingRow {
    pub host_id: String,
    pub plugin_id: String,
    pub version: String,
    pub stars: u8,
    pub text: String,
    pub at: u64,
    pub hidden: bool,
}

/// A publisher, its namespaces and keys.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublisherRow {
    pub name: String,
    pub namespaces: Vec<String>,
    pub keys: Vec<PublisherKey>,
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublisherKey {
    pub key_id: String,
    pub name: String,
    /// Hex Ed25519 public key.
    pub public_key: String,
    pub added_at: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) pool: SqlitePool,
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn opt_u64(row: &sqlx::sqlite::SqliteRow, column: &str) -> Option<u64> {
    row.get::<Option<i64>, _>(column).map(|v| v.max(0) as u64)
}

/// The columns [`version_row`] reads, as a literal for `concat!` (queries stay static
/// strings).
macro_rules! version_columns {
    () => {
        "plugin_id, version, publisher, sha256, upload_sha256, file_sha256, size, kind, name, description, categories, tags, capabilities, dependencies, state, decided_by, decided_at, decision_reason, yanked_at, yank_reason, revoked_at, revoke_reason, published_at"
    };
}
pub(crate) use version_columns;

pub(crate) fn version_row(row: &sqlx::sqlite::SqliteRow) -> VersionRow {
    VersionRow {
        plugin_id: row.get("plugin_id"),
        version: row.get("version"),
        publisher: row.get("publisher"),
        sha256: row.get("sha256"),
        upload_sha256: row.get("upload_sha256"),
        file_sha256: row.get("file_sha256"),
        size: row.get::<i64, _>("size").max(0) as u64,
        kind: row.get("kind"),
        name: row.get("name"),
        description: row.get("description"),
        categories: json_list(row.get("categories")),
        tags: json_list(row.get("tags")),
        capabilities: serde_json::from_str(row.get("capabilities")).unwrap_or_default(),
        dependencies: serde_json::from_str(row.get("dependencies")).unwrap_or_default(),
        state: State::parse(row.get("state")),
        decided_by: row.get("decided_by"),
        decided_at: opt_u64(row, "decided_at"),
        decision_reason: row.get("decision_reason"),
        yanked_at: opt_u64(row, "yanked_at"),
        yank_reason: row.get("yank_reason"),
        revoked_at: opt_u64(row, "revoked_at"),
        revoke_reason: row.get("revoke_reason"),
        published_at: row.get::<i64, _>("published_at").max(0) as u64,
    }
}

/// Every approved, unrevoked version, by id and then semver.
pub(crate) async fn approved<'e, E>(executor: E) -> Result<Vec<VersionRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let mut rows: Vec<VersionRow> = sqlx::query(concat!(
        "SELECT ",
        version_columns!(),
        " FROM versions WHERE state = 'approved' AND revoked_at IS NULL"
    ))
    .fetch_all(executor)
    .await?
    .iter()
    .map(version_row)
    .collect();
    rows.sort_by(|a, b| {
        a.plugin_id
            .cmp(&b.plugin_id)
            .then_with(|| crate::semver_order(&a.version, &b.version))
    });
    Ok(rows)
}

pub(crate) fn rating_row(row: &sqlx::sqlite::SqliteRow) -> RatingRow {
    RatingRow {
        host_id: row.get("host_id"),
        plugin_id: row.get("plugin_id"),
        version: row.get("version"),
        stars: row.get::<i64, _>("stars").clamp(1, 5) as u8,
        text: row.get("text"),
        at: row.get::<i64, _>("at").max(0) as u64,
        hidden: row.get::<Option<i64>, _>("hidden_at").is_some(),
    }
}

impl Store {
    pub(crate) async fn open(dir: &Path) -> Result<Store, sqlx::Error> {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("market.db"))
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Store { pool })
    }

    pub(crate) async fn meta(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
    }

    /// The publisher owning the namespace that `plugin_id` falls in (the id itself, or its
    /// prefix up to a `-`), with that namespace.
    pub(crate) async fn owner_of(
        &self,
        plugin_id: &str,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        let rows = sqlx::query("SELECT prefix, publisher FROM namespaces")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>("prefix"),
                    r.get::<String, _>("publisher"),
                )
            })
            .filter(|(prefix, _)| crate::in_namespace(plugin_id, prefix))
            // The longest matching prefix owns it (`acme-labs` inside `acme`).
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(prefix, publisher)| (publisher, prefix)))
    }

    pub(crate) async fn publisher(&self, name: &str) -> Result<Option<PublisherRow>, sqlx::Error> {
        let Some(created_at) =
            sqlx::query_scalar::<_, i64>("SELECT created_at FROM publishers WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let namespaces =
            sqlx::query_scalar("SELECT prefix FROM namespaces WHERE publisher = ? ORDER BY prefix")
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
        let keys = sqlx::query(
            "SELECT key_id, name, public_key, added_at FROM publisher_keys WHERE publisher = ? ORDER BY added_at, key_id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| PublisherKey {
            key_id: r.get("key_id"),
            name: r.get("name"),
            public_key: r.get("public_key"),
            added_at: r.get::<i64, _>("added_at").max(0) as u64,
        })
        .collect();
        Ok(Some(PublisherRow {
            name: name.to_string(),
            namespaces,
            keys,
            created_at: created_at.max(0) as u64,
        }))
    }

    pub(crate) async fn publishers(&self) -> Result<Vec<PublisherRow>, sqlx::Error> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM publishers ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(p) = self.publisher(&name).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    pub(crate) async fn version(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> Result<Option<VersionRow>, sqlx::Error> {
        Ok(sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM versions WHERE plugin_id = ? AND version = ?"
        ))
        .bind(plugin_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(version_row))
    }

    /// Every version of a plugin, whatever its state, oldest first (by semver).
    pub(crate) async fn versions(&self, plugin_id: &str) -> Result<Vec<VersionRow>, sqlx::Error> {
        let mut rows: Vec<VersionRow> = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM versions WHERE plugin_id = ?"
        ))
        .bind(plugin_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(version_row)
        .collect();
        rows.sort_by(|a, b| crate::semver_order(&a.version, &b.version));
        Ok(rows)
    }

    pub(crate) async fn report(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> Result<Option<serde_json::Value>, sqlx::Error> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT report FROM versions WHERE plugin_id = ? AND version = ?")
                .bind(plugin_id)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// The publisher of an id's versions, if any was published.
    pub(crate) async fn publisher_of(
        &self,
        plugin_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT publisher FROM versions WHERE plugin_id = ? ORDER BY published_at LIMIT 1",
        )
        .bind(plugin_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Ids other publishers established (an approved version), for the look-alike check.
    pub(crate) async fn ids_not_of(&self, publisher: &str) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT DISTINCT plugin_id FROM versions WHERE publisher != ? AND state = 'approved'",
        )
        .bind(publisher)
        .fetch_all(&self.pool)
        .await
    }

    /// Counts a change to what the index lists, in the change's own transaction; the next
    /// request for the index signs a new version when the count moved since the last one.
    pub(crate) async fn index_changed<'e, E>(executor: E) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
    {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('index_changes', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        )
        .execute(executor)
        .await
        .map(drop)
    }

    pub(crate) async fn installs(&self, plugin_id: &str, since: u64) -> Result<u64, sqlx::Error> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM installs WHERE plugin_id = ? AND at >= ?")
                .bind(plugin_id)
                .bind(since as i64)
                .fetch_one(&self.pool)
                .await?;
        Ok(n.max(0) as u64)
    }

    pub(crate) async fn ratings(
        &self,
        plugin_id: &str,
        include_hidden: bool,
    ) -> Result<Vec<RatingRow>, sqlx::Error> {
        Ok(sqlx::query(
            "SELECT host_id, plugin_id, version, stars, text, at, hidden_at FROM ratings WHERE plugin_id = ? AND (? OR hidden_at IS NULL) ORDER BY at DESC, host_id",
        )
        .bind(plugin_id)
        .bind(include_hidden)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rating_row)
        .collect())
    }
}
