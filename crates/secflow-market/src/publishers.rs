//! Publishers: the namespaces an admin grants them and the keys they sign with.

use super::*;

impl Market {
    /// Creates a publisher, or grants an existing one more namespaces. A namespace owned
    /// by another publisher is refused.
    pub async fn grant_namespaces(
        &self,
        publisher: &str,
        namespaces: &[String],
        actor: &str,
    ) -> Result<PublisherRow> {
        check_name("publisher name", publisher)?;
        for ns in namespaces {
            check_name("namespace", ns)?;
        }
        let mut tx = self.store().pool.begin().await?;
        sqlx::query(
            "INSERT INTO publishers (name, created_at, created_by) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(publisher)
        .bind(now() as i64)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        for ns in namespaces {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT publisher FROM namespaces WHERE prefix = ?")
                    .bind(ns)
                    .fetch_optional(&mut *tx)
                    .await?;
            match owner {
                Some(owner) if owner == publisher => {}
                Some(owner) => {
                    return Err(MarketError::Conflict(format!(
                        "namespace `{ns}` belongs to publisher `{owner}`"
                    )));
                }
                None => {
                    // A namespace may not take over ids another publisher already published.
                    let taken: Option<String> = sqlx::query_scalar(
                        "SELECT publisher FROM versions WHERE publisher != ? AND (plugin_id = ? OR plugin_id LIKE ?) LIMIT 1",
                    )
                    .bind(publisher)
                    .bind(ns)
                    .bind(format!("{ns}-%"))
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(other) = taken {
                        return Err(MarketError::Conflict(format!(
                            "namespace `{ns}` would cover plugins `{other}` already published"
                        )));
                    }
                    sqlx::query(
                        "INSERT INTO namespaces (prefix, publisher, granted_at, granted_by) VALUES (?, ?, ?, ?)",
                    )
                    .bind(ns)
                    .bind(publisher)
                    .bind(now() as i64)
                    .bind(actor)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        self.audit(
            actor,
            Action::MarketPublisher,
            None,
            "ok",
            format!(
                "publisher {publisher} owns namespaces {}",
                namespaces.join(", ")
            ),
            serde_json::json!({"publisher": publisher, "namespaces": namespaces}),
        )
        .await?;
        self.publisher(publisher).await
    }

    /// Registers a publisher's signing key (a SecFlow public key file).
    pub async fn add_publisher_key(
        &self,
        publisher: &str,
        public_key_file: &str,
        actor: &str,
    ) -> Result<PublisherRow> {
        let (file, _) = PublicKeyFile::parse(public_key_file)
            .map_err(|e| MarketError::Invalid(format!("public key: {e}")))?;
        self.publisher(publisher).await?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT publisher FROM publisher_keys WHERE key_id = ?")
                .bind(&file.key_id)
                .fetch_optional(&self.store().pool)
                .await?;
        match owner {
            Some(owner) if owner == publisher => return self.publisher(publisher).await,
            Some(owner) => {
                return Err(MarketError::Conflict(format!(
                    "key {} is registered to publisher `{owner}`",
                    file.key_id
                )));
            }
            None => {}
        }
        sqlx::query(
            "INSERT INTO publisher_keys (key_id, publisher, public_key, name, added_at, added_by) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&file.key_id)
        .bind(publisher)
        .bind(&file.public)
        .bind(&file.name)
        .bind(now() as i64)
        .bind(actor)
        .execute(&self.store().pool)
        .await?;
        self.audit(
            actor,
            Action::MarketPublisher,
            None,
            "ok",
            format!("key {} registered to publisher {publisher}", file.key_id),
            serde_json::json!({"publisher": publisher, "key_id": file.key_id}),
        )
        .await?;
        self.publisher(publisher).await
    }

    pub async fn publisher(&self, name: &str) -> Result<PublisherRow> {
        self.store().publisher(name).await?.ok_or_else(|| {
            MarketError::NotFound(format!(
                "no publisher `{}`; an admin creates it by granting it a namespace",
                name.escape_debug()
            ))
        })
    }

    pub async fn publishers(&self) -> Result<Vec<PublisherRow>> {
        Ok(self.store().publishers().await?)
    }
}
