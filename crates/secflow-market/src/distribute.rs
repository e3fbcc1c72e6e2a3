//! What clients fetch: the signed index, the signed revocation list, package files.

use super::*;

impl Market {
    /// The signed index, re-signed (with the next version) after any change to what it
    /// lists, and when half of its lifetime has passed.
    pub async fn index(&self) -> Result<SignedDocument> {
        let _one = self.inner.signing.lock().await;
        let store = self.store();
        let lifetime = self.inner.config.index_lifetime.as_secs().max(60);
        let number = |v: Option<String>| v.and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
        let changes = number(store.meta("index_changes").await?);
        let signed_changes = number(store.meta("index_signed_changes").await?);
        let expires = number(store.meta("index_expires_at").await?);
        let current: Option<SignedDocument> = store
            .meta("index")
            .await?
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(current) = current
            && changes == signed_changes
            && expires > now() + lifetime / 2
        {
            return Ok(current);
        }
        // One write transaction from the version bump to the stored document: its first
        // statement takes SQLite's write lock, so no change commits while the rows are
        // read, and no other signer (another process) gets the same version.
        let mut tx = store.pool.begin().await?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO meta (key, value) VALUES ('index_version', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING CAST(value AS INTEGER)",
        )
        .fetch_one(&mut *tx)
        .await?;
        let changes: String = sqlx::query_scalar(
            "SELECT COALESCE((SELECT value FROM meta WHERE key = 'index_changes'), '0')",
        )
        .fetch_one(&mut *tx)
        .await?;
        let issued_at = now();
        let index = Index {
            kind: INDEX_TYPE.into(),
            version: version.max(1) as u64,
            issued_at,
            expires_at: issued_at + lifetime,
            plugins: index_plugins(store::approved(&mut *tx).await?),
        };
        let doc = SignedDocument::sign(&index, &[&self.inner.key]);
        for (key, value) in [
            ("index", serde_json::to_string(&doc).expect("serializes")),
            ("index_expires_at", index.expires_at.to_string()),
            ("index_signed_changes", changes),
        ] {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(doc)
    }

    pub(crate) async fn approved(&self) -> Result<Vec<VersionRow>> {
        Ok(store::approved(&self.store().pool).await?)
    }

    /// The signed list of revoked digests (a `secflow.revocation-list/v1` signed by the
    /// marketplace key), re-signed when a revocation is added.
    pub async fn revocations(&self) -> Result<Signed> {
        let rows = sqlx::query(
            "SELECT plugin_id, version, sha256, revoked_at, revoke_reason FROM versions WHERE revoked_at IS NOT NULL ORDER BY revoked_at, plugin_id, version",
        )
        .fetch_all(&self.store().pool)
        .await?;
        if let Some((count, signed)) = self.inner.revocations.lock().expect("revocations").as_ref()
            && *count == rows.len()
        {
            return Ok(signed.clone());
        }
        let entries = rows
            .iter()
            .map(|r| secflow_trust::Revocation {
                item: secflow_trust::RevokedItem::PackageSha256(r.get("sha256")),
                // Any use is refused, whenever it was installed.
                from: 0,
                reason: format!(
                    "{} {} revoked by the marketplace: {}",
                    r.get::<String, _>("plugin_id"),
                    r.get::<String, _>("version"),
                    r.get::<Option<String>, _>("revoke_reason")
                        .unwrap_or_default()
                ),
            })
            .collect();
        let signed = secflow_trust::lists::sign_revocations(&self.inner.key, entries, now());
        *self.inner.revocations.lock().expect("revocations") = Some((rows.len(), signed.clone()));
        Ok(signed)
    }

    /// The countersigned package file of an approved, unrevoked version.
    pub async fn package(&self, id: &str, version: &str) -> Result<(VersionRow, Vec<u8>)> {
        let row = self.existing(id, version).await?;
        if row.state != State::Approved {
            return Err(MarketError::NotFound(format!(
                "{id} {version} is {}, not approved: it is not served",
                row.state.as_str()
            )));
        }
        if row.revoked_at.is_some() {
            return Err(MarketError::NotFound(format!(
                "{id} {version} was revoked: {}",
                row.revoke_reason.clone().unwrap_or_default()
            )));
        }
        let bytes = self.read_package(&row.file_sha256)?;
        Ok((row, bytes))
    }

    /// A pending version's upload, for its reviewers.
    pub async fn upload(&self, id: &str, version: &str) -> Result<(VersionRow, Vec<u8>)> {
        let row = self.existing(id, version).await?;
        if row.state != State::Pending {
            return Err(MarketError::NotFound(format!(
                "{id} {version} is {}, not waiting for review; fetch its package instead",
                row.state.as_str()
            )));
        }
        let bytes = self.read_package(&row.upload_sha256)?;
        Ok((row, bytes))
    }
}

/// The index entries of approved rows (sorted by id, then version).
fn index_plugins(rows: Vec<VersionRow>) -> Vec<IndexPlugin> {
    let mut plugins: Vec<IndexPlugin> = Vec::new();
    for row in rows {
        let caps: Capabilities =
            serde_json::from_value(row.capabilities.clone()).unwrap_or_default();
        let version = IndexVersion {
            version: row.version.clone(),
            sha256: row.sha256.clone(),
            file_sha256: row.file_sha256.clone(),
            size: row.size,
            published_at: row.published_at,
            yanked: row.yanked_at.is_some(),
            capabilities: secflow_registry::grants::labels(&caps),
            dependencies: row.dependencies.clone(),
        };
        match plugins.last_mut() {
            Some(p) if p.id == row.plugin_id => {
                // The newest version describes the plugin.
                p.name = row.name;
                p.description = row.description;
                p.kind = row.kind;
                p.categories = row.categories;
                p.tags = row.tags;
                p.versions.push(version);
            }
            _ => plugins.push(IndexPlugin {
                id: row.plugin_id,
                name: row.name,
                kind: row.kind,
                description: row.description,
                publisher: row.publisher,
                categories: row.categories,
                tags: row.tags,
                versions: vec![version],
            }),
        }
    }
    plugins
}
