//! Install receipts and ratings, signed by the installing host's key.

use super::*;

/// How old a receipt may be when it arrives (a client offline for a while sends it later).
pub const RECEIPT_MAX_AGE_SECS: u64 = 30 * 86_400;

impl Market {
    /// Counts an install from a receipt signed by the installing host: once per host and
    /// version. Returns whether it was new.
    pub async fn record_install(&self, receipt: &HostSigned, actor: &str) -> Result<bool> {
        let (host_id, body) = receipt
            .receipt()
            .map_err(|e| MarketError::Invalid(format!("install receipt: {e}")))?;
        let row = self.existing(&body.plugin_id, &body.version).await?;
        if row.state != State::Approved || row.revoked_at.is_some() {
            return Err(MarketError::Invalid(format!(
                "{} {} is not installable from this marketplace (it is {}{})",
                body.plugin_id,
                body.version,
                row.state.as_str(),
                if row.revoked_at.is_some() {
                    ", revoked"
                } else {
                    ""
                }
            )));
        }
        if row.sha256 != body.sha256 {
            return Err(MarketError::Invalid(format!(
                "the receipt names payload {} but {} {} published here is {}",
                body.sha256, body.plugin_id, body.version, row.sha256
            )));
        }
        let at = now();
        if body.issued_at > at + secflow_trust::verify::MAX_CLOCK_SKEW_SECS
            || body.issued_at.saturating_add(RECEIPT_MAX_AGE_SECS) < at
        {
            return Err(MarketError::Invalid(format!(
                "the receipt was issued at {}, not within the last {} days: send it when installing",
                body.issued_at,
                RECEIPT_MAX_AGE_SECS / 86_400
            )));
        }
        let new = sqlx::query(
            "INSERT INTO installs (host_id, plugin_id, version, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&host_id)
        .bind(&body.plugin_id)
        .bind(&body.version)
        .bind(now() as i64)
        .execute(&self.store().pool)
        .await?
        .rows_affected()
            == 1;
        if new {
            self.audit(
                actor,
                Action::MarketReceipt,
                Some(PluginRef {
                    id: body.plugin_id.clone(),
                    version: body.version.clone(),
                    digest: body.sha256.clone(),
                }),
                "install",
                String::new(),
                serde_json::json!({"host": host_id}),
            )
            .await?;
        }
        Ok(new)
    }

    /// A rating by a host that sent an install receipt for the plugin; one per host and
    /// plugin (a new one replaces the old; a hidden one stays hidden: only a reviewer shows
    /// it again).
    pub async fn rate(&self, id: &str, rating: &HostSigned, actor: &str) -> Result<RatingRow> {
        let (host_id, body) = rating
            .rating()
            .map_err(|e| MarketError::Invalid(format!("rating: {e}")))?;
        if body.plugin_id != id {
            return Err(MarketError::Invalid(format!(
                "the rating is for {}, not {id}",
                body.plugin_id
            )));
        }
        let installed: Option<String> = sqlx::query_scalar(
            "SELECT version FROM installs WHERE host_id = ? AND plugin_id = ? ORDER BY at DESC LIMIT 1",
        )
        .bind(&host_id)
        .bind(id)
        .fetch_optional(&self.store().pool)
        .await?;
        let Some(version) = installed else {
            return Err(MarketError::Forbidden(format!(
                "no install receipt from host {host_id} for {id}: only hosts that installed it may rate it (a client sends the receipt when it installs)"
            )));
        };
        sqlx::query(
            "INSERT INTO ratings (host_id, plugin_id, version, stars, text, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(host_id, plugin_id) DO UPDATE SET version = excluded.version, stars = excluded.stars, text = excluded.text, at = excluded.at",
        )
        .bind(&host_id)
        .bind(id)
        .bind(&version)
        .bind(i64::from(body.stars))
        .bind(&body.text)
        .bind(now() as i64)
        .execute(&self.store().pool)
        .await?;
        self.audit(
            actor,
            Action::MarketReceipt,
            Some(PluginRef {
                id: id.into(),
                version: version.clone(),
                digest: String::new(),
            }),
            "rating",
            String::new(),
            serde_json::json!({"host": host_id, "stars": body.stars}),
        )
        .await?;
        let row = sqlx::query(
            "SELECT host_id, plugin_id, version, stars, text, at, hidden_at FROM ratings WHERE host_id = ? AND plugin_id = ?",
        )
        .bind(&host_id)
        .bind(id)
        .fetch_one(&self.store().pool)
        .await?;
        Ok(store::rating_row(&row))
    }

    /// Moderation: hides (or shows again) a rating.
    pub async fn moderate(
        &self,
        id: &str,
        host_id: &str,
        hide: bool,
        reason: &str,
        actor: &str,
    ) -> Result<()> {
        if hide {
            check_reason("hiding a rating", reason)?;
        }
        let changed = sqlx::query(
            "UPDATE ratings SET hidden_at = ?, hidden_by = ?, hidden_reason = ? WHERE plugin_id = ? AND host_id = ?",
        )
        .bind(hide.then(|| now() as i64))
        .bind(hide.then(|| actor.to_string()))
        .bind(hide.then(|| reason.to_string()))
        .bind(id)
        .bind(host_id)
        .execute(&self.store().pool)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(MarketError::NotFound(format!(
                "no rating of {id} by host {host_id}"
            )));
        }
        self.audit(
            actor,
            Action::MarketReceipt,
            Some(PluginRef {
                id: id.into(),
                version: String::new(),
                digest: String::new(),
            }),
            if hide {
                "rating-hidden"
            } else {
                "rating-shown"
            },
            reason.to_string(),
            serde_json::json!({"host": host_id}),
        )
        .await
    }
}
