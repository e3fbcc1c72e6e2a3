//! What front ends show: the plugins (bundled and installed), one plugin in full, its
//! versions and permissions, and the registry's integrity.

use crate::{Host, Origin, Result};
use secflow_registry::grants::{self, Ask, Grant};
use secflow_registry::{Health, InstalledPlugin, RunStats, SearchQuery, VersionRecord};

/// A plugin as listed: where it comes from and its state.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginListing {
    pub origin: Origin,
    #[serde(flatten)]
    pub plugin: InstalledPlugin,
}

/// Everything known about one installed plugin.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    pub plugin: InstalledPlugin,
    pub manifest: secflow_manifest::Manifest,
    pub versions: Vec<String>,
    pub grant: Grant,
    pub granted: Vec<String>,
    pub stats: RunStats,
    pub health: Option<Health>,
}

/// What a plugin asked for and what it was granted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Permissions {
    pub asked: Vec<Ask>,
    pub granted: Vec<String>,
    pub grant: Grant,
}

/// A bundled plugin as a listing row: always enabled, never signed by a key (the binary
/// pins its digest).
fn bundled_row(b: &crate::BundledPlugin) -> PluginListing {
    let m = &b.manifest;
    PluginListing {
        origin: Origin::Bundled,
        plugin: InstalledPlugin {
            id: m.id.to_string(),
            version: m.version.to_string(),
            kind: m.kind.to_string(),
            name: m.name.clone(),
            description: m.description.clone(),
            categories: m.categories.clone(),
            tags: m.tags.clone(),
            digest: b.sha256.to_string(),
            enabled: true,
            pending_approval: false,
            quarantined: false,
            quarantine_reason: None,
            violations: 0,
            signers: Vec::new(),
            installed_at: String::new(),
            updated_at: String::new(),
        },
    }
}

impl Host {
    /// The bundled plugins, then the installed ones.
    pub async fn list(&self) -> Result<Vec<PluginListing>> {
        self.search(&SearchQuery::default()).await
    }

    /// Bundled and installed plugins matching `query`.
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<PluginListing>> {
        let mut out: Vec<PluginListing> = crate::bundled()?
            .iter()
            .map(bundled_row)
            .filter(|row| query.matches(&row.plugin))
            .collect();
        if self.has_registry() {
            out.extend(
                self.registry()
                    .await?
                    .search(query)
                    .await?
                    .into_iter()
                    .map(|plugin| PluginListing {
                        origin: Origin::Installed,
                        plugin,
                    }),
            );
        }
        Ok(out)
    }

    /// Every stored version of an installed plugin.
    pub async fn versions(&self, id: &str) -> Result<Vec<VersionRecord>> {
        Ok(self.registry().await?.versions(id).await?)
    }

    /// What an installed plugin asked for and was granted.
    pub async fn permissions(&self, id: &str) -> Result<Permissions> {
        let (_, record, grant) = self.registry().await?.snapshot(id).await?;
        Ok(Permissions {
            asked: grants::asks(&record.manifest.capabilities),
            granted: grants::labels(&grant.capabilities),
            grant,
        })
    }

    /// One installed plugin in full.
    pub async fn info(&self, id: &str) -> Result<PluginInfo> {
        self.flush().await?;
        let mut registry = self.registry().await?;
        let (plugin, record, grant) = registry.snapshot(id).await?;
        let versions = registry.versions(id).await?;
        let stats = registry.stats(id).await?;
        let health = registry.health(id).await?;
        Ok(PluginInfo {
            granted: grants::labels(&grant.capabilities),
            plugin,
            manifest: record.manifest,
            versions: versions.into_iter().map(|v| v.version).collect(),
            grant,
            stats,
            health,
        })
    }

    /// Problems with the stored packages (missing or modified blobs); empty when intact.
    pub async fn check_registry(&self) -> Result<Vec<String>> {
        Ok(self.registry().await?.check().await?)
    }
}
