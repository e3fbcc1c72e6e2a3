//! On-disk cache of precompiled components.
//!
//! Compiling a component takes 100–200 ms; loading a precompiled one takes well under a
//! millisecond. Precompiled code is native code that wasmtime only lightly validates, so the
//! cache never loads a file it did not write itself: each artifact carries an HMAC-SHA256
//! under a random per-cache key (file mode 0600) and is checked before `deserialize`. Entries
//! are keyed by the SHA-256 of the component and wasmtime's compatibility hash of the engine
//! configuration, so a different wasmtime or different engine settings never share entries.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;

/// Where compiled components are kept, with the key that authenticates them.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
}

/// How a component was obtained, for reports and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    Hit,
    Compiled,
    /// No cache configured.
    Uncached,
}

impl CompileCache {
    /// Opens (creating if needed) a cache directory and its key.
    pub fn open(dir: &Path) -> std::io::Result<CompileCache> {
        std::fs::create_dir_all(dir)?;
        restrict(dir, 0o700)?;
        let key_path = dir.join("cache.key");
        let key = match std::fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
                restrict(tmp.path(), 0o600)?;
                tmp.write_all(&key)?;
                tmp.as_file().sync_all()?;
                tmp.persist(&key_path).map_err(|e| e.error)?;
                key
            }
        };
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    fn entry_name(engine: &Engine, component_digest: &str) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        format!("{component_digest}-{:016x}", hasher.finish())
    }

    fn mac(&self, bytes: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length works");
        mac.update(bytes);
        mac.finalize().into_bytes().to_vec()
    }

    /// Loads the component from the cache, or compiles and stores it.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let name = Self::entry_name(engine, digest);
        let artifact = self.dir.join(format!("{name}.cwasm"));
        let tag_path = self.dir.join(format!("{name}.mac"));
        if let (Ok(bytes), Ok(tag)) = (std::fs::read(&artifact), std::fs::read(&tag_path)) {
            let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length works");
            mac.update(&bytes);
            if mac.verify_slice(&tag).is_ok() {
                // SAFETY: the bytes were produced by `precompile_component` in this cache (the
                // HMAC under the cache's private key proves it) for an engine with the same
                // compatibility hash; wasmtime rejects mismatched configurations itself.
                #[allow(unsafe_code)]
                let component = unsafe { Component::deserialize(engine, &bytes) };
                if let Ok(component) = component {
                    return Ok((component, CacheOutcome::Hit));
                }
            }
            tracing::warn!(path = %artifact.display(), "discarding unauthenticated or stale compiled component");
        }
        let compiled = engine.precompile_component(wasm)?;
        // Persist best effort: a read-only cache must not stop the plugin from running.
        if let Err(e) = self.store(&artifact, &tag_path, &compiled) {
            tracing::warn!(error = %e, "could not write the component cache");
        }
        // SAFETY: produced just now by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, artifact: &Path, tag_path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        for (path, bytes) in [
            (artifact, compiled.to_vec()),
            (tag_path, self.mac(compiled)),
        ] {
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(&bytes)?;
            tmp.persist(path).map_err(|e| e.error)?;
        }
        Ok(())
    }
}

/// SHA-256 of the component bytes, hex.
pub fn digest(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}
