//! What reviewers and publishers do to a stored version: review (approve and countersign,
//! or reject), yank, revoke.

use super::*;

/// A version waiting for review, with its report.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pending {
    pub version: VersionRow,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: serde_json::Value,
}

impl Market {
    /// Versions waiting for a reviewer, oldest first.
    pub async fn queue(&self) -> Result<Vec<Pending>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            store::version_columns!(),
            ", report FROM versions WHERE state = 'pending' ORDER BY published_at, plugin_id, version"
        ))
        .fetch_all(&self.store().pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Pending {
                version: store::version_row(r),
                report: serde_json::from_str(r.get("report")).unwrap_or_default(),
            })
            .collect())
    }

    pub(crate) async fn existing(&self, id: &str, version: &str) -> Result<VersionRow> {
        self.store().version(id, version).await?.ok_or_else(|| {
            MarketError::NotFound(format!(
                "no version {} of {} in this marketplace",
                version.escape_debug(),
                id.escape_debug()
            ))
        })
    }

    /// A reviewer approves (the marketplace countersigns) or rejects a pending version.
    pub async fn review(
        &self,
        id: &str,
        version: &str,
        approve: bool,
        reason: &str,
        actor: &str,
    ) -> Result<VersionRow> {
        let row = self.existing(id, version).await?;
        if row.state != State::Pending {
            return Err(MarketError::Conflict(format!(
                "{id} {version} is {} already; only pending versions are reviewed",
                row.state.as_str()
            )));
        }
        if row.revoked_at.is_some() {
            return Err(MarketError::Conflict(format!(
                "{id} {version} was revoked; it cannot be approved"
            )));
        }
        check_reason("a review", reason)?;
        let (state, file_sha256) = if approve {
            let upload = self.read_package(&row.upload_sha256)?;
            (
                State::Approved,
                self.write_package(&self.countersign(&upload)?)?,
            )
        } else {
            (State::Rejected, row.file_sha256.clone())
        };
        let mut tx = self.store().pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE versions SET state = ?, file_sha256 = ?, decided_by = ?, decided_at = ?, decision_reason = ? WHERE plugin_id = ? AND version = ? AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(&file_sha256)
        .bind(actor)
        .bind(now() as i64)
        .bind(reason)
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(MarketError::Conflict(format!(
                "{id} {version} was reviewed by someone else at the same moment"
            )));
        }
        if approve {
            Store::index_changed(&mut *tx).await?;
        }
        tx.commit().await?;
        self.audit(
            actor,
            Action::MarketReview,
            Some(PluginRef {
                id: id.into(),
                version: version.into(),
                digest: row.sha256.clone(),
            }),
            state.as_str(),
            reason.to_string(),
            serde_json::json!({"file_sha256": file_sha256}),
        )
        .await?;
        self.existing(id, version).await
    }

    /// Yanks (or un-yanks) a version: not picked by version ranges any more; installed
    /// copies and exact-version installs keep working. `publisher`: the caller's publisher
    /// when it is one (it may yank only its own versions); `None` for an admin.
    pub async fn yank(
        &self,
        id: &str,
        version: &str,
        yanked: bool,
        reason: &str,
        publisher: Option<&str>,
        actor: &str,
    ) -> Result<VersionRow> {
        if yanked {
            check_reason("a yank", reason)?;
        }
        let row = self.existing(id, version).await?;
        if let Some(publisher) = publisher
            && publisher != row.publisher
        {
            return Err(MarketError::Forbidden(format!(
                "{id} {version} belongs to publisher `{}`",
                row.publisher
            )));
        }
        let mut tx = self.store().pool.begin().await?;
        sqlx::query(
            "UPDATE versions SET yanked_at = ?, yank_reason = ? WHERE plugin_id = ? AND version = ?",
        )
        .bind(yanked.then(|| now() as i64))
        .bind(yanked.then(|| reason.to_string()))
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        Store::index_changed(&mut *tx).await?;
        tx.commit().await?;
        self.audit(
            actor,
            Action::MarketYank,
            Some(PluginRef {
                id: id.into(),
                version: version.into(),
                digest: row.sha256.clone(),
            }),
            if yanked { "yanked" } else { "unyanked" },
            reason.to_string(),
            serde_json::json!({}),
        )
        .await?;
        self.existing(id, version).await
    }

    /// Revokes a version: its digest goes on the signed revocation list; clients refuse to
    /// run it and quarantine it. It leaves the index and is no longer served.
    pub async fn revoke(
        &self,
        id: &str,
        version: &str,
        reason: &str,
        actor: &str,
    ) -> Result<VersionRow> {
        let row = self.existing(id, version).await?;
        check_reason("a revocation", reason)?;
        if row.revoked_at.is_some() {
            return Ok(row);
        }
        let mut tx = self.store().pool.begin().await?;
        sqlx::query(
            "UPDATE versions SET revoked_at = ?, revoke_reason = ? WHERE plugin_id = ? AND version = ?",
        )
        .bind(now() as i64)
        .bind(reason)
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        Store::index_changed(&mut *tx).await?;
        tx.commit().await?;
        self.audit(
            actor,
            Action::MarketRevoke,
            Some(PluginRef {
                id: id.into(),
                version: version.into(),
                digest: row.sha256.clone(),
            }),
            "revoked",
            reason.to_string(),
            serde_json::json!({}),
        )
        .await?;
        self.existing(id, version).await
    }
}
