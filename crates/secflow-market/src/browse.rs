//! Browsing: search over approved plugins, and the plugin page.

use super::*;

/// Search parameters for browsing.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Words matched against id, name, description and tags.
    pub text: Option<String>,
    pub kind: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    pub sort: Sort,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Most installs first.
    #[default]
    Downloads,
    /// Best average rating first.
    Rating,
    /// Most recently published first.
    Recent,
}

/// One plugin in search results.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Listing {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub description: String,
    pub publisher: String,
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    /// Newest approved, unyanked version (else the newest approved one).
    pub latest_version: String,
    pub updated_at: u64,
    pub downloads: u64,
    /// Average of visible ratings, if any.
    pub rating: Option<f64>,
    pub ratings: u64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResult {
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub plugins: Vec<Listing>,
}

/// Everything the plugin page shows.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginPage {
    pub listing: Listing,
    /// The latest version in full.
    pub latest: VersionRow,
    /// What the latest version asks for, with the author's reasons.
    pub capabilities: Vec<vetting::Capability>,
    /// Every approved, unrevoked version, newest first.
    pub versions: Vec<VersionSummary>,
    /// The latest version's vetting report.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: serde_json::Value,
    pub downloads: Downloads,
    pub ratings: Vec<RatingRow>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionSummary {
    pub version: String,
    pub published_at: u64,
    pub yanked: bool,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Downloads {
    /// Distinct hosts and versions, ever.
    pub total: u64,
    pub last_90_days: u64,
}

impl Market {
    async fn listings(&self) -> Result<Vec<(Listing, VersionRow)>> {
        let approved = self.approved().await?;
        let downloads: BTreeMap<String, u64> =
            sqlx::query("SELECT plugin_id, COUNT(*) AS n FROM installs GROUP BY plugin_id")
                .fetch_all(&self.store().pool)
                .await?
                .iter()
                .map(|r| (r.get("plugin_id"), r.get::<i64, _>("n").max(0) as u64))
                .collect();
        let ratings: BTreeMap<String, (f64, u64)> = sqlx::query(
            "SELECT plugin_id, AVG(stars) AS avg, COUNT(*) AS n FROM ratings WHERE hidden_at IS NULL GROUP BY plugin_id",
        )
        .fetch_all(&self.store().pool)
        .await?
        .iter()
        .map(|r| {
            (
                r.get("plugin_id"),
                (r.get::<f64, _>("avg"), r.get::<i64, _>("n").max(0) as u64),
            )
        })
        .collect();
        let mut by_id: BTreeMap<String, Vec<VersionRow>> = BTreeMap::new();
        for row in approved {
            by_id.entry(row.plugin_id.clone()).or_default().push(row);
        }
        Ok(by_id
            .into_iter()
            .filter_map(|(id, versions)| {
                let latest = versions
                    .iter()
                    .rev()
                    .find(|v| v.yanked_at.is_none())
                    .or(versions.last())?
                    .clone();
                let updated_at = versions.iter().map(|v| v.published_at).max().unwrap_or(0);
                let (rating, count) = ratings
                    .get(&id)
                    .map_or((None, 0), |(avg, n)| (Some(*avg), *n));
                Some((
                    Listing {
                        id: id.clone(),
                        name: latest.name.clone(),
                        kind: latest.kind.clone(),
                        description: latest.description.clone(),
                        publisher: latest.publisher.clone(),
                        categories: latest.categories.clone(),
                        tags: latest.tags.clone(),
                        latest_version: latest.version.clone(),
                        updated_at,
                        downloads: downloads.get(&id).copied().unwrap_or(0),
                        rating,
                        ratings: count,
                    },
                    latest,
                ))
            })
            .collect())
    }

    /// Browse and search the approved plugins.
    pub async fn search(&self, query: &Query) -> Result<SearchResult> {
        let words: Vec<String> = query
            .text
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let mut found: Vec<Listing> = self
            .listings()
            .await?
            .into_iter()
            .map(|(l, _)| l)
            .filter(|l| query.kind.as_ref().is_none_or(|k| &l.kind == k))
            .filter(|l| {
                query
                    .category
                    .as_ref()
                    .is_none_or(|c| l.categories.contains(c))
            })
            .filter(|l| query.tag.as_ref().is_none_or(|t| l.tags.contains(t)))
            .filter(|l| {
                let text = format!("{} {} {} {}", l.id, l.name, l.description, l.tags.join(" "))
                    .to_lowercase();
                words.iter().all(|w| text.contains(w.as_str()))
            })
            .collect();
        match query.sort {
            Sort::Downloads => found.sort_by_key(|l| std::cmp::Reverse(l.downloads)),
            Sort::Rating => found.sort_by(|a, b| {
                b.rating
                    .unwrap_or(0.0)
                    .total_cmp(&a.rating.unwrap_or(0.0))
                    .then(b.ratings.cmp(&a.ratings))
            }),
            Sort::Recent => found.sort_by_key(|l| std::cmp::Reverse(l.updated_at)),
        }
        let per_page = query.per_page.clamp(1, 100);
        let page = query.page.max(1);
        let total = found.len();
        let plugins = found
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        Ok(SearchResult {
            total,
            page,
            per_page,
            plugins,
        })
    }

    /// The plugin page of an approved plugin.
    pub async fn page(&self, id: &str) -> Result<PluginPage> {
        let Some((listing, latest)) = self.listings().await?.into_iter().find(|(l, _)| l.id == id)
        else {
            return Err(MarketError::NotFound(format!(
                "no approved plugin `{}` in this marketplace",
                id.escape_debug()
            )));
        };
        let caps: Capabilities =
            serde_json::from_value(latest.capabilities.clone()).unwrap_or_default();
        let capabilities = secflow_registry::grants::asks(&caps)
            .into_iter()
            .map(|a| vetting::Capability {
                label: a.label,
                reason: a.reason,
            })
            .collect();
        let mut versions: Vec<VersionSummary> = self
            .store()
            .versions(id)
            .await?
            .into_iter()
            .filter(|v| v.state == State::Approved && v.revoked_at.is_none())
            .map(|v| VersionSummary {
                version: v.version,
                published_at: v.published_at,
                yanked: v.yanked_at.is_some(),
                sha256: v.sha256,
            })
            .collect();
        versions.reverse();
        let report = self
            .store()
            .report(id, &latest.version)
            .await?
            .unwrap_or_default();
        let downloads = Downloads {
            total: self.store().installs(id, 0).await?,
            last_90_days: self
                .store()
                .installs(id, now().saturating_sub(90 * 86_400))
                .await?,
        };
        let ratings = self.store().ratings(id, false).await?;
        Ok(PluginPage {
            listing,
            latest,
            capabilities,
            versions,
            report,
            downloads,
            ratings,
        })
    }
}
