//! API tokens for `secflow serve`.
//!
//! A token is `sft_<id>_<secret>`: `id` (12 hex digits) is public and names the token in
//! logs, audit events and `token list`; `secret` (32 random bytes, 64 hex digits) is shown
//! once, when the token is created, and stored only as its SHA-256. Because the secret is
//! 256 random bits, an unsalted fast hash is the right tool (nothing to brute-force, and a
//! check costs a microsecond); the comparison is constant-time all the same, and an
//! unknown id costs the same hash and comparison as a known one.
//!
//! Tokens live in `tokens.db` (SQLite, WAL) in the state directory, so that a token the CLI
//! revokes is refused by a running server on its next request. A server checks a token on
//! every request; it keeps the rows it read for up to a second and reads again as soon as
//! the database files change (a create or revoke by any process), and at once after one
//! of its own.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// What a token may do is decided by policy from its role; these are the roles the shipped
/// policies know.
pub const ROLES: [&str; 5] = ["viewer", "publisher", "reviewer", "operator", "admin"];

const PREFIX: &str = "sft_";
const ID_HEX: usize = 12;
const SECRET_HEX: usize = 64;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
";

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no token with id `{0}`")]
    NotFound(String),
    #[error("unknown role `{0}`; use one of viewer, publisher, reviewer, operator, admin")]
    UnknownRole(String),
    #[error("a token name is 1 to 64 printable characters; got {0:?}")]
    BadName(String),
    #[error("the token store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// Why a presented token was refused. The messages never include the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the token is malformed (expected sft_<id>_<secret>)")]
    Malformed,
    #[error("the token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token was revoked")]
    Revoked,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    /// RFC 3339.
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// Who a valid token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub role: String,
}

/// A token just created: the only time its secret exists outside the caller's hands.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub info: TokenInfo,
    /// `sft_<id>_<secret>`; show it once.
    pub token: String,
}

/// The token store of one state directory.
#[derive(Debug, Clone)]
pub struct TokenStore {
    pool: SqlitePool,
    path: std::path::PathBuf,
    rows: std::sync::Arc<std::sync::Mutex<RowCache>>,
}

/// A stored token row as authentication needs it.
#[derive(Debug, Clone)]
struct StoredRow {
    name: String,
    role: String,
    secret_sha256: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// Rows read recently, valid while the database files look the same as when they were
/// read, for at most [`ROW_TTL`] (file times are coarse: two writes within a few
/// milliseconds can leave the same stamp, which the bound covers).
#[derive(Debug, Default)]
struct RowCache {
    stamp: Option<FilesStamp>,
    rows: std::collections::HashMap<String, (std::time::Instant, StoredRow)>,
}

type FilesStamp = [secflow_io::FileStamp; 2];

/// How long a token row read from the database is trusted without reading it again.
const ROW_TTL: Duration = Duration::from_secs(1);

/// Rows kept at most; all are dropped past it.
const ROW_ENTRIES: usize = 4096;

impl TokenStore {
    /// Opens (creating) `dir/tokens.db`.
    pub async fn open(dir: &Path) -> Result<TokenStore, TokenError> {
        std::fs::create_dir_all(dir).map_err(|e| TokenError::Store(sqlx::Error::Io(e)))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("tokens.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        // The database holds no secret, but who has which role is nobody else's business.
        secflow_io::restrict(&dir.join("tokens.db"), 0o600).map_err(sqlx::Error::Io)?;
        Ok(TokenStore {
            pool,
            path: dir.join("tokens.db"),
            rows: Default::default(),
        })
    }

    /// Creates a token. `expires_in` of `None` never expires.
    pub async fn create(
        &self,
        name: &str,
        role: &str,
        expires_in: Option<Duration>,
        created_by: &str,
    ) -> Result<NewToken, TokenError> {
        if !ROLES.contains(&role) {
            return Err(TokenError::UnknownRole(role.to_string()));
        }
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(TokenError::BadName(name.to_string()));
        }
        let mut id_bytes = [0u8; ID_HEX / 2];
        let mut secret_bytes = [0u8; SECRET_HEX / 2];
        getrandom::fill(&mut id_bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        getrandom::fill(&mut secret_bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        let id = hex::encode(id_bytes);
        let secret = hex::encode(secret_bytes);
        let now = unix_now();
        let expires = expires_in.map(|d| now.saturating_add(d.as_secs() as i64));
        sqlx::query(
            "INSERT INTO tokens (id, name, role, secret_sha256, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(name)
        .bind(role)
        .bind(secflow_io::sha256_hex(secret.as_bytes()))
        .bind(now)
        .bind(created_by)
        .bind(expires)
        .execute(&self.pool)
        .await?;
        Ok(NewToken {
            token: format!("{PREFIX}{id}_{secret}"),
            info: TokenInfo {
                id,
                name: name.to_string(),
                role: role.to_string(),
                created_at: rfc3339(now),
                created_by: created_by.to_string(),
                expires_at: expires.map(rfc3339),
                revoked_at: None,
            },
        })
    }

    /// Every token, newest first.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, created_by, expires_at, revoked_at FROM tokens ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| TokenInfo {
                id: r.get("id"),
                name: r.get("name"),
                role: r.get("role"),
                created_at: rfc3339(r.get("created_at")),
                created_by: r.get("created_by"),
                expires_at: r.get::<Option<i64>, _>("expires_at").map(rfc3339),
                revoked_at: r.get::<Option<i64>, _>("revoked_at").map(rfc3339),
            })
            .collect())
    }

    /// Revokes a token; revoking it again changes nothing.
    pub async fn revoke(&self, id: &str) -> Result<TokenInfo, TokenError> {
        sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(unix_now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.forget();
        self.list()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| TokenError::NotFound(id.to_string()))
    }

    /// Checks a presented token.
    pub async fn authenticate(
        &self,
        presented: &str,
    ) -> Result<Result<Identity, Refusal>, TokenError> {
        let Some((id, secret)) = parse(presented) else {
            return Ok(Err(Refusal::Malformed));
        };
        let row = self.row(id).await?;
        let presented_hash = secflow_io::sha256_hex(secret.as_bytes());
        // An unknown id is compared against a hash no secret has, so that it costs the same.
        let stored = row
            .as_ref()
            .map_or_else(|| "0".repeat(64), |r| r.secret_sha256.clone());
        let matches: bool = presented_hash.as_bytes().ct_eq(stored.as_bytes()).into();
        let Some(row) = row.filter(|_| matches) else {
            return Ok(Err(Refusal::Invalid));
        };
        if row.revoked_at.is_some() {
            return Ok(Err(Refusal::Revoked));
        }
        if row.expires_at.is_some_and(|t| t <= unix_now()) {
            return Ok(Err(Refusal::Expired));
        }
        Ok(Ok(Identity {
            id: id.to_string(),
            name: row.name,
            role: row.role,
        }))
    }

    /// The stored row of token `id`: remembered, or read (and remembered).
    async fn row(&self, id: &str) -> Result<Option<StoredRow>, TokenError> {
        let stamp = self.stamp();
        {
            let mut cache = self.rows.lock().expect("token rows");
            if cache.stamp != Some(stamp) {
                cache.rows.clear();
                cache.stamp = Some(stamp);
            }
            if let Some((at, row)) = cache.rows.get(id)
                && at.elapsed() < ROW_TTL
            {
                return Ok(Some(row.clone()));
            }
        }
        let row = sqlx::query(
            "SELECT name, role, secret_sha256, expires_at, revoked_at FROM tokens WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| StoredRow {
            name: r.get("name"),
            role: r.get("role"),
            secret_sha256: r.get("secret_sha256"),
            expires_at: r.get("expires_at"),
            revoked_at: r.get("revoked_at"),
        });
        if let Some(row) = &row {
            let mut cache = self.rows.lock().expect("token rows");
            // Only rows read under the stamp taken before the read: a change since then
            // leaves a new stamp, and the next request reads again.
            if cache.stamp == Some(stamp) {
                if cache.rows.len() >= ROW_ENTRIES {
                    cache.rows.clear();
                }
                cache
                    .rows
                    .insert(id.to_string(), (std::time::Instant::now(), row.clone()));
            }
        }
        Ok(row)
    }

    /// The database file and its write-ahead log as `stat` sees them: any write by any
    /// process changes one of them.
    fn stamp(&self) -> FilesStamp {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [
            secflow_io::FileStamp::of(&self.path),
            secflow_io::FileStamp::of(Path::new(&wal)),
        ]
    }

    /// Forgets every remembered row (after a change made here).
    fn forget(&self) {
        let mut cache = self.rows.lock().expect("token rows");
        cache.rows.clear();
        cache.stamp = None;
    }
}

/// Splits `sft_<id>_<secret>`; anything else is malformed.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    (hex(id, ID_HEX) && hex(secret, SECRET_HEX)).then_some((id, secret))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn rfc3339(unix: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_revoke_by_another_process_is_seen_on_the_next_check() {
        let dir = tempfile::tempdir().unwrap();
        // Two stores on one directory: the server's, and the CLI's in another process.
        let server = TokenStore::open(dir.path()).await.unwrap();
        let cli = TokenStore::open(dir.path()).await.unwrap();
        let new = cli
            .create("ci", "operator", None, "cli:root")
            .await
            .unwrap();
        for _ in 0..3 {
            assert!(server.authenticate(&new.token).await.unwrap().is_ok());
        }
        cli.revoke(&new.info.id).await.unwrap();
        assert_eq!(
            server.authenticate(&new.token).await.unwrap(),
            Err(Refusal::Revoked)
        );
    }

    #[tokio::test]
    async fn create_authenticate_expire_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).await.unwrap();
        let new = store
            .create("ci", "operator", None, "cli:root")
            .await
            .unwrap();
        assert!(new.token.starts_with("sft_"));
        assert_eq!(new.token.len(), 4 + 12 + 1 + 64);
        let who = store.authenticate(&new.token).await.unwrap().unwrap();
        assert_eq!((who.name.as_str(), who.role.as_str()), ("ci", "operator"));
        // The secret is not stored.
        let db = std::fs::read(dir.path().join("tokens.db")).unwrap();
        let secret = new.token.rsplit('_').next().unwrap();
        assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));

        // A wrong secret for a real id, an unknown id, garbage.
        let mut wrong = new.token.clone();
        wrong.pop();
        wrong.push(if new.token.ends_with('0') { '1' } else { '0' });
        assert_eq!(
            store.authenticate(&wrong).await.unwrap(),
            Err(Refusal::Invalid)
        );
        let unknown = format!("sft_{}_{}", "0".repeat(12), "a".repeat(64));
        assert_eq!(
            store.authenticate(&unknown).await.unwrap(),
            Err(Refusal::Invalid)
        );
        for bad in [
            "",
            "Bearer x",
            "sft_",
            "sft_abc_def",
            &new.token.to_uppercase(),
            &format!("{}x", new.token),
        ] {
            assert_eq!(
                store.authenticate(bad).await.unwrap(),
                Err(Refusal::Malformed),
                "{bad}"
            );
        }

        let short = store
            .create("short", "viewer", Some(Duration::from_secs(0)), "cli:root")
            .await
            .unwrap();
        assert_eq!(
            store.authenticate(&short.token).await.unwrap(),
            Err(Refusal::Expired)
        );

        let revoked = store.revoke(&new.info.id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(
            store.authenticate(&new.token).await.unwrap(),
            Err(Refusal::Revoked)
        );
        // A second store on the same file (another process) sees the revocation.
        let other = TokenStore::open(dir.path()).await.unwrap();
        assert_eq!(
            other.authenticate(&new.token).await.unwrap(),
            Err(Refusal::Revoked)
        );
        assert_eq!(other.list().await.unwrap().len(), 2);
        assert!(matches!(
            store.revoke("nope").await,
            Err(TokenError::NotFound(_))
        ));
        assert!(matches!(
            store.create("x", "root", None, "cli").await,
            Err(TokenError::UnknownRole(_))
        ));
        assert!(matches!(
            store.create("a\u{1b}[31m", "viewer", None, "cli").await,
            Err(TokenError::BadName(_))
        ));
    }
}
