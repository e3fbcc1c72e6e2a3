//! On-disk cache of precompiled components.
//!
//! Compiling a component takes 100–200 ms; loading a precompiled one takes well under a
//! millisecond. Precompiled code is native code that wasmtime only lightly validates, so the
//! cache never loads a file it did not write itself *for that entry*: each artifact carries
//! an HMAC-SHA256 over the entry's identity (the SHA-256 of the component and wasmtime's
//! compatibility hash of the engine configuration) and the artifact's bytes. A valid
//! artifact of plugin A renamed to plugin B's entry fails the check, is discarded and B is
//! compiled again. The key is the caller's (the CLI derives it from the host key in
//! `SECFLOW_HOME/keys`), never stored in the cache directory, so write access to the cache
//! alone is not enough to plant code.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;

/// Where compiled components are kept, with the key that authenticates them.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Domain separation for the cache MAC.
const MAC_CONTEXT: &[u8] = b"secflow compiled component v2\0";

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
    /// Opens (creating if needed) a cache directory whose entries are authenticated with
    /// `key`. Keep the key outside the directory.
    pub fn open(dir: &Path, key: [u8; 32]) -> std::io::Result<CompileCache> {
        std::fs::create_dir_all(dir)?;
        secflow_io::private_dir(dir)?;
        // Caches written before the key moved out of the directory: the old key is useless
        // now (every entry fails the new MAC) and should not linger.
        let _ = std::fs::remove_file(dir.join("cache.key"));
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

    /// The MAC of an artifact *as the entry `name`*: the identity is covered, so a valid
    /// artifact moved to another entry does not verify.
    fn mac(&self, name: &str, bytes: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length works");
        mac.update(MAC_CONTEXT);
        mac.update(&(name.len() as u64).to_le_bytes());
        mac.update(name.as_bytes());
        mac.update(bytes);
        mac
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
            if self.mac(&name, &bytes).verify_slice(&tag).is_ok() {
                // SAFETY: the bytes were produced by `precompile_component` for this very
                // component and engine configuration (the HMAC under the host's key over the
                // entry name and the bytes proves it); wasmtime rejects mismatched
                // configurations itself.
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
        if let Err(e) = self.store(&name, &artifact, &tag_path, &compiled) {
            tracing::warn!(error = %e, "could not write the component cache");
        }
        // SAFETY: produced just now by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(
        &self,
        name: &str,
        artifact: &Path,
        tag_path: &Path,
        compiled: &[u8],
    ) -> std::io::Result<()> {
        let tag = self.mac(name, compiled).finalize().into_bytes().to_vec();
        for (path, bytes) in [(artifact, compiled.to_vec()), (tag_path, tag)] {
            secflow_io::write_atomic(path, &bytes, secflow_io::Mode::Private)?;
        }
        Ok(())
    }
}

/// SHA-256 of the component bytes, hex.
pub fn digest(wasm: &[u8]) -> String {
    secflow_io::sha256_hex(wasm)
}
