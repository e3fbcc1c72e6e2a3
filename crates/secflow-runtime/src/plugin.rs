//! Loading a plugin: compile (or fetch from the cache), check the component's imports
//! against the manifest's declared capabilities, check it implements the declared kind,
//! and pre-link it so every invocation only instantiates.

use crate::cache::{self, CacheOutcome};
use crate::engine::Runtime;
use crate::error::LoadError;
use crate::netpolicy::NetGrant;
use secflow_manifest::{Access, Manifest, PluginKind, ResolvedLimits};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::Component;

/// What an invocation of this plugin may touch. Built from the declared capabilities and the
/// host's decision; never wider than the manifest.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub filesystem: Vec<FsGrant>,
    pub network: Vec<NetGrant>,
    /// The key-value store's namespace and quota, when it is granted.
    pub kv: Option<crate::kv::KvGrant>,
}

/// A directory preopened for the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsGrant {
    /// Path the plugin sees.
    pub guest: String,
    /// Directory on the host.
    pub host: PathBuf,
    pub write: bool,
}

impl Grants {
    /// Grants everything the manifest declares, binding each filesystem path to the same
    /// path on the host unless `mounts` maps it elsewhere (`guest -> host`). Used by
    /// `secflow run --dev`, where the developer is the one approving. A mount for a path the
    /// manifest does not declare is an error, never a silent extra grant or a silent no-op.
    ///
    /// The key-value store is the `--dev` store of the plugin's id
    /// ([`KvNamespace::dev`](crate::kv::KvNamespace::dev)); bundled and installed plugins
    /// get theirs with [`Grants::with_kv_namespace`].
    pub fn all_declared(
        manifest: &Manifest,
        mounts: &[(String, PathBuf)],
    ) -> Result<Grants, String> {
        let caps = &manifest.capabilities;
        let mut bound = vec![None; caps.filesystem.len()];
        for (guest, host) in mounts {
            let normalized = secflow_manifest::normalize_guest_path(guest).ok();
            let index = caps
                .filesystem
                .iter()
                .position(|fs| normalized.as_deref() == Some(fs.guest_path().as_str()))
                .ok_or_else(|| {
                    format!(
                        "--mount {guest}: the manifest declares no filesystem capability for that \
                         path; add a [[capabilities.filesystem]] entry with a reason"
                    )
                })?;
            bound[index] = Some(host.clone());
        }
        Ok(Grants {
            filesystem: caps
                .filesystem
                .iter()
                .zip(bound)
                .map(|(fs, host)| {
                    let guest = fs.guest_path();
                    FsGrant {
                        host: host.unwrap_or_else(|| PathBuf::from(&guest)),
                        guest,
                        write: fs.access == Access::Write,
                    }
                })
                .collect(),
            network: NetGrant::from_capabilities(&caps.network),
            kv: caps.kv.as_ref().map(|kv| crate::kv::KvGrant {
                namespace: crate::kv::KvNamespace::dev(manifest.id.as_str()),
                quota: kv.quota_bytes(),
            }),
        })
    }

    /// Puts the key-value store (if granted) in `namespace`: the verified identity of the
    /// plugin, so a plugin that only claims an id never shares its store.
    pub fn with_kv_namespace(mut self, namespace: crate::kv::KvNamespace) -> Grants {
        if let Some(kv) = &mut self.kv {
            kv.namespace = namespace;
        }
        self
    }

    /// Grants nothing, whatever the manifest asks.
    pub fn none() -> Grants {
        Grants::default()
    }
}

/// A verified, compiled and pre-linked plugin, ready for fresh-instance invocations.
pub struct Plugin {
    pub manifest: Manifest,
    /// SHA-256 of the component bytes.
    pub digest: String,
    pub limits: ResolvedLimits,
    pub grants: Grants,
    /// The component's imports, as checked at load.
    pub imports: Vec<String>,
    pub cache: CacheOutcome,
    pub(crate) pre: crate::kinds::KindPre,
    /// `config-schema`, compiled once at load.
    pub(crate) config: secflow_manifest::ConfigValidator,
    pub(crate) metered: bool,
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    /// The size of `slots`: most invocations of this plugin at once.
    pub(crate) slot_limit: usize,
    pub(crate) net: Arc<Vec<NetGrant>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Checks a configuration against the manifest's `config-schema` without running
    /// anything, so a caller can report a bad `--config` before a long job starts.
    pub fn check_config(&self, config: &serde_json::Value) -> Result<(), Vec<String>> {
        self.config.validate(config)
    }

    /// Invocations of this plugin holding a slot right now (for back-pressure metrics and
    /// tests).
    pub fn in_flight(&self) -> usize {
        self.slot_limit - self.slots.available_permits()
    }
}

/// Decides whether a component may import `name`, given what the manifest declares.
/// Returns the reason for a refusal.
pub fn check_import(manifest: &Manifest, name: &str) -> Result<(), String> {
    let iface = name.split('@').next().unwrap_or(name);
    let caps = &manifest.capabilities;
    match iface {
        "secflow:plugin/types" | "secflow:plugin/host" => Ok(()),
        "secflow:plugin/kv" if caps.kv.is_some() => Ok(()),
        "secflow:plugin/kv" => Err(format!(
            "the component imports `{name}` but the manifest declares no `[capabilities.kv]`; \
             declare it with a reason, or stop using the key-value store"
        )),
        i if i.starts_with("wasi:http/") => {
            if caps.network.is_empty() {
                Err(format!(
                    "the component imports `{name}` (outgoing HTTP) but the manifest declares no \
                     `[[capabilities.network]]`; declare each host it contacts with a reason"
                ))
            } else {
                Ok(())
            }
        }
        i if i.starts_with("wasi:sockets/") => Err(format!(
            "the component imports `{name}`: raw sockets are never granted to plugins; \
             use outgoing HTTP (wasi:http) with a declared network capability"
        )),
        i if [
            "wasi:cli/",
            "wasi:io/",
            "wasi:clocks/",
            "wasi:random/",
            "wasi:filesystem/",
        ]
        .iter()
        .any(|p| i.starts_with(p)) =>
        {
            // Rust's std imports these even when unused; they expose nothing ambient
            // (no env, no args, no stdin, no preopens unless granted).
            Ok(())
        }
        _ => Err(format!(
            "the component imports `{name}`, which SecFlow does not provide to plugins"
        )),
    }
}

fn kind_interface(kind: PluginKind) -> String {
    format!("secflow:plugin/{}", kind.as_str())
}

impl Runtime {
    /// Compiles (or loads from the cache), checks and pre-links a plugin.
    pub fn load(
        &self,
        manifest: Manifest,
        wasm: &[u8],
        grants: Grants,
    ) -> Result<Plugin, LoadError> {
        let plugin = format!("{}@{}", manifest.id, manifest.version);
        let host_version =
            semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("crate version");
        manifest
            .check_host_compat(&host_version)
            .map_err(|p| LoadError::Incompatible {
                plugin: plugin.clone(),
                message: format!("{} (fix: {})", p.message, p.fix),
            })?;
        let limits = manifest.limits.resolve();
        let metered = limits.fuel.is_some();
        let set = self.engines(metered).map_err(|message| LoadError::Host {
            plugin: plugin.clone(),
            message,
        })?;
        let engine = &set.engine;
        let digest = cache::digest(wasm);
        if is_core_module(wasm) {
            return Err(LoadError::InvalidComponent {
                plugin,
                message: "this is a core WebAssembly module, not a component; build for \
                          `wasm32-wasip2` (secflow plugin build does)"
                    .into(),
            });
        }
        let (component, outcome) = match &self.inner.cache {
            Some(cache) => cache.load(engine, wasm, &digest),
            None => Component::new(engine, wasm).map(|c| (c, CacheOutcome::Uncached)),
        }
        .map_err(|e| LoadError::InvalidComponent {
            plugin: plugin.clone(),
            message: format!("{e:#}"),
        })?;

        let ty = component.component_type();
        let mut imports = Vec::new();
        for (name, _) in ty.imports(engine) {
            check_import(&manifest, name).map_err(|message| LoadError::Refused {
                plugin: plugin.clone(),
                message,
            })?;
            imports.push(name.to_string());
        }
        let wanted = kind_interface(manifest.kind);
        let exported: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        if !exported
            .iter()
            .any(|e| e.split('@').next() == Some(wanted.as_str()))
        {
            let found = exported
                .iter()
                .find(|e| e.starts_with("secflow:plugin/"))
                .map_or("no SecFlow plugin interface".to_string(), |e| {
                    format!("`{e}`")
                });
            return Err(LoadError::KindMismatch {
                plugin,
                message: format!(
                    "the manifest says kind `{}` but the component exports {found}; \
                     fix `kind` or export the `{}` world with the matching secflow_pdk macro",
                    manifest.kind, manifest.kind
                ),
            });
        }

        let instance_pre = set
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Host {
                plugin: plugin.clone(),
                message: format!("{e:#}"),
            })?;
        let mismatch = |e: wasmtime::Error| LoadError::KindMismatch {
            plugin: plugin.clone(),
            message: format!(
                "the component does not implement the `{}` contract of secflow:plugin@0.1.0: {e:#}",
                manifest.kind
            ),
        };
        let pre = crate::kinds::KindPre::new(manifest.kind, instance_pre).map_err(mismatch)?;
        let net = Arc::new(grants.network.clone());
        let config = manifest
            .config_validator()
            .map_err(|errors| LoadError::Host {
                plugin: plugin.clone(),
                message: errors.join("; "),
            })?;
        Ok(Plugin {
            config,
            limits,
            digest,
            imports,
            cache: outcome,
            pre,
            metered,
            slots: Arc::new(tokio::sync::Semaphore::new(
                self.inner.config.max_concurrent_per_plugin,
            )),
            slot_limit: self.inner.config.max_concurrent_per_plugin,
            net,
            grants,
            manifest,
        })
    }
}

/// A core module starts with the wasm magic and version 1; a component uses layer 1.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(caps: &str) -> Manifest {
        Manifest::parse(
            format!(
                "id = \"p\"\nversion = \"0.1.0\"\nkind = \"action\"\nname = \"P\"\n\
                 description = \"p\"\n{caps}"
            )
            .as_bytes(),
            secflow_manifest::Format::Toml,
            "test",
        )
        .unwrap()
    }

    #[test]
    fn raw_sockets_are_never_granted_and_undeclared_imports_are_refused() {
        let everything = manifest(
            "[[capabilities.network]]\nhost = \"example.com\"\nreason = \"fetches rule updates\"\n\
             [capabilities.kv]\nreason = \"remembers what it saw\"\n",
        );
        for socket in [
            "wasi:sockets/tcp@0.2.0",
            "wasi:sockets/udp@0.2.6",
            "wasi:sockets/network@0.2.0",
        ] {
            let e = check_import(&everything, socket).unwrap_err();
            assert!(e.contains("raw sockets are never granted"), "{e}");
        }
        assert!(check_import(&everything, "wasi:http/outgoing-handler@0.2.0").is_ok());
        let nothing = manifest("");
        assert!(
            check_import(&nothing, "wasi:http/outgoing-handler@0.2.0")
                .unwrap_err()
                .contains("[[capabilities.network]]")
        );
        assert!(
            check_import(&nothing, "secflow:plugin/kv@0.1.0")
                .unwrap_err()
                .contains("[capabilities.kv]")
        );
        assert!(
            check_import(&nothing, "acme:backdoor/shell@1.0.0")
                .unwrap_err()
                .contains("does not provide")
        );
    }
}
