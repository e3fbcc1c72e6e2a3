//! Packing a plugin directory reproducibly: the same inputs give the same bytes.

use crate::{PackageError, PackageLimits, assemble, is_optional_file};
use std::path::{Path, PathBuf};

fn pack_err(path: impl std::fmt::Display, reason: impl std::fmt::Display) -> PackageError {
    PackageError::Pack {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// The files `pack_dir` would put in the package, as (path in package, path on disk),
/// sorted. Symlinks and special files in the plugin directory are refused, not followed.
pub fn packed_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, PackageError> {
    let err = |path: &Path, reason: String| pack_err(path.display(), reason);
    let manifest_path = secflow_manifest::find_manifest(dir)
        .ok_or_else(|| err(dir, "no plugin.toml or plugin.yaml".into()))?;
    let manifest = secflow_manifest::Manifest::from_file(&manifest_path)?;
    let manifest_name = manifest_path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("manifest file names are ASCII")
        .to_string();
    let mut files = vec![(manifest_name, manifest_path.clone())];
    let component = dir.join(&manifest.component);
    if !component.is_file() {
        return Err(err(
            &component,
            "the component is missing; run `secflow plugin build` first".into(),
        ));
    }
    files.push((manifest.component.clone(), component));
    for name in crate::DOC_FILES {
        let path = dir.join(name);
        if path.is_file() {
            files.push((name.to_string(), path));
        }
    }
    let assets = dir.join("assets");
    if assets.is_dir() {
        collect(&assets, "assets", &mut files)?;
    }
    for (name, path) in &files {
        let meta = std::fs::symlink_metadata(path).map_err(|e| err(path, e.to_string()))?;
        if !meta.file_type().is_file() {
            return Err(err(
                path,
                "not a regular file (symlinks are not followed)".into(),
            ));
        }
        if *name != files[0].0 && *name != manifest.component && !is_optional_file(name) {
            return Err(err(path, "not a file a package may carry".into()));
        }
    }
    files.sort();
    Ok(files)
}

fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<(), PackageError> {
    let read = std::fs::read_dir(dir).map_err(|e| pack_err(dir.display(), e))?;
    for entry in read {
        let entry = entry.map_err(|e| pack_err(dir.display(), e))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| pack_err(path.display(), "file name is not UTF-8"))?;
        let rel = format!("{prefix}/{name}");
        let kind = entry.file_type().map_err(|e| pack_err(path.display(), e))?;
        if kind.is_dir() {
            collect(&path, &rel, out)?;
        } else {
            out.push((rel, path));
        }
    }
    Ok(())
}

/// Packs a plugin directory into an unsigned package file. Deterministic: entries sorted,
/// timestamps, owners and modes fixed, gzip header without time or name.
pub fn pack_dir(dir: &Path) -> Result<Vec<u8>, PackageError> {
    let files = packed_files(dir)?;
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, path) in &files {
        let data = std::fs::read(path).map_err(|e| pack_err(path.display(), e))?;
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data.as_slice())
            .map_err(|e| pack_err(name, e))?;
    }
    let tar_bytes = tar.into_inner().map_err(|e| pack_err(dir.display(), e))?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(9));
    std::io::Write::write_all(&mut gz, &tar_bytes).map_err(|e| pack_err(dir.display(), e))?;
    let payload = gz.finish().map_err(|e| pack_err(dir.display(), e))?;
    let package = assemble(&payload, &[]);
    // Check our own output with the reader, so nothing unreadable is ever produced.
    crate::read_payload(&payload, &PackageLimits::default())?;
    Ok(package)
}
