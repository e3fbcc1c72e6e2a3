//! Reading a payload: hostile-input parsing into memory, under hard caps.

use crate::{PackageError, PackageLimits, is_optional_file};
use secflow_manifest::{Format, MAX_MANIFEST_BYTES, Manifest};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;

/// A package's contents, validated.
#[derive(Debug, Clone)]
pub struct Package {
    pub manifest: Manifest,
    /// `plugin.toml` or `plugin.yaml`.
    pub manifest_name: String,
    /// The component named by the manifest.
    pub component: Vec<u8>,
    /// Every file, by path (manifest and component included).
    pub files: BTreeMap<String, Vec<u8>>,
    /// SHA-256 of the payload.
    pub digest: String,
}

/// Counts decompressed bytes and stops past the cap, so a bomb is cut off while reading,
/// not after.
struct Capped<R> {
    inner: R,
    read: u64,
    cap: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(std::io::Error::other("decompressed size cap exceeded"));
        }
        Ok(n)
    }
}

fn check_path(raw: &[u8]) -> Result<String, PackageError> {
    let shown = String::from_utf8_lossy(raw).escape_debug().to_string();
    let bad = |reason: &str| PackageError::BadEntry {
        entry: shown.clone(),
        reason: reason.to_string(),
    };
    let path = std::str::from_utf8(raw).map_err(|_| bad("the name is not UTF-8"))?;
    if path.is_empty() {
        return Err(bad("empty name"));
    }
    if path.len() > 255 {
        return Err(bad("name longer than 255 bytes"));
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Err(bad("absolute or non-portable path"));
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(bad("control characters in the name"));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 8 {
        return Err(bad("nested deeper than 8 directories"));
    }
    for part in &parts {
        match *part {
            "" | "." => return Err(bad("empty or `.` path component")),
            ".." => return Err(bad("`..` path component (path traversal)")),
            _ => {}
        }
    }
    Ok(path.to_string())
}

/// Unpacks a payload (gzip tar) into memory and validates it as a plugin package.
///
/// The payload must be canonical, because signatures cover its exact bytes: one gzip
/// member whose CRC-32 and length match, nothing after it, and inside it a tar archive that
/// ends with its end-of-archive marker (two zero blocks) and nothing else. Otherwise a
/// valid signature would also vouch for bytes no reader looks at.
pub fn read_payload(payload: &[u8], limits: &PackageLimits) -> Result<Package, PackageError> {
    let decoder = flate2::bufread::GzDecoder::new(payload);
    // Tar headers add 512 bytes per entry on top of file data.
    let header_room = (limits.max_entries as u64 + 2) * 1024;
    let ratio_cap = (payload.len() as u64)
        .saturating_mul(limits.max_ratio)
        .max(1 << 20);
    let cap = (limits.max_total_bytes + header_room).min(ratio_cap);
    let mut archive = tar::Archive::new(Capped {
        inner: decoder,
        read: 0,
        cap,
    });
    let bomb = |e: &std::io::Error| -> Option<PackageError> {
        (e.to_string().contains("decompressed size cap exceeded")).then(|| {
            PackageError::TooLarge(format!(
                "payload decompresses past {cap} bytes (decompression bomb?): at most {} bytes in \
                 all and a {}:1 ratio are allowed",
                limits.max_total_bytes, limits.max_ratio
            ))
        })
    };
    let malformed =
        |e: std::io::Error| bomb(&e).unwrap_or_else(|| PackageError::Malformed(e.to_string()));

    let mut files = BTreeMap::new();
    let mut folded = HashSet::new();
    let mut total = 0u64;
    read_entries(
        &mut archive,
        limits,
        &malformed,
        &mut files,
        &mut folded,
        &mut total,
    )?;
    check_canonical_end(archive.into_inner(), &malformed)?;

    let manifest_names: Vec<&String> = files
        .keys()
        .filter(|k| secflow_manifest::MANIFEST_FILE_NAMES.contains(&k.as_str()))
        .collect();
    let manifest_name = match manifest_names.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(PackageError::Malformed(
                "no plugin.toml or plugin.yaml at the top of the package".into(),
            ));
        }
        _ => {
            return Err(PackageError::Malformed(
                "more than one manifest (plugin.toml and plugin.yaml); keep one".into(),
            ));
        }
    };
    let manifest_bytes = &files[&manifest_name];
    if manifest_bytes.len() > MAX_MANIFEST_BYTES {
        return Err(PackageError::TooLarge(format!(
            "manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
            manifest_bytes.len()
        )));
    }
    let format = if manifest_name.ends_with(".toml") {
        Format::Toml
    } else {
        Format::Yaml
    };
    let manifest = Manifest::parse(manifest_bytes, format, &format!("package:{manifest_name}"))?;
    let component = files.get(&manifest.component).cloned().ok_or_else(|| {
        PackageError::Malformed(format!(
            "the manifest names component `{}` but the package has no such file",
            manifest.component
        ))
    })?;
    if let Some(stray) = files
        .keys()
        .find(|k| **k != manifest_name && **k != manifest.component && !is_optional_file(k))
    {
        return Err(PackageError::BadEntry {
            entry: stray.clone(),
            reason: "not allowed in a package (only the manifest, the component, README, LICENSE, \
                     NOTICE and files under assets/)"
                .into(),
        });
    }
    Ok(Package {
        manifest,
        manifest_name,
        component,
        files,
        digest: crate::payload_digest(payload),
    })
}

type Reader<'a> = Capped<flate2::bufread::GzDecoder<&'a [u8]>>;

/// Reads every entry of the archive into `files`, under the limits.
fn read_entries(
    archive: &mut tar::Archive<Reader<'_>>,
    limits: &PackageLimits,
    malformed: &dyn Fn(std::io::Error) -> PackageError,
    files: &mut BTreeMap<String, Vec<u8>>,
    folded: &mut HashSet<String>,
    total: &mut u64,
) -> Result<(), PackageError> {
    let entries = archive.entries().map_err(malformed)?;
    for entry in entries {
        let mut entry = entry.map_err(malformed)?;
        if files.len() >= limits.max_entries {
            return Err(PackageError::TooLarge(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        let path = check_path(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            let what = match kind {
                tar::EntryType::Symlink => "a symbolic link",
                tar::EntryType::Link => "a hard link",
                tar::EntryType::Char | tar::EntryType::Block => "a device",
                tar::EntryType::Fifo => "a FIFO",
                tar::EntryType::Directory => "a directory entry",
                _ => "not a regular file",
            };
            return Err(PackageError::BadEntry {
                entry: path,
                reason: format!("{what}; packages hold only regular files"),
            });
        }
        let size = entry.header().size().map_err(malformed)?;
        if size > limits.max_entry_bytes {
            return Err(PackageError::TooLarge(format!(
                "entry `{path}` is {size} bytes; the limit is {}",
                limits.max_entry_bytes
            )));
        }
        *total += size;
        if *total > limits.max_total_bytes {
            return Err(PackageError::TooLarge(format!(
                "files add up to more than {} bytes",
                limits.max_total_bytes
            )));
        }
        // Case-folded too: `A` and `a` are one file on case-insensitive filesystems.
        if files.contains_key(&path) || !folded.insert(path.to_lowercase()) {
            return Err(PackageError::BadEntry {
                entry: path,
                reason: "duplicate name".into(),
            });
        }
        let mut data = Vec::with_capacity(size as usize);
        (&mut entry)
            .take(size + 1)
            .read_to_end(&mut data)
            .map_err(malformed)?;
        if data.len() as u64 != size {
            return Err(PackageError::Truncated(format!(
                "entry `{path}` is cut off"
            )));
        }
        files.insert(path, data);
    }
    Ok(())
}

/// After the last entry the tar reader has consumed the first zero block of the
/// end-of-archive marker: what is left of the decompressed stream must be exactly the
/// second one. Reading to the end makes the gzip decoder check the stream's CRC-32 and
/// length, and what follows the gzip stream must be nothing.
fn check_canonical_end(
    mut rest: Reader<'_>,
    malformed: &dyn Fn(std::io::Error) -> PackageError,
) -> Result<(), PackageError> {
    const BLOCK: usize = 512;
    let mut tail = Vec::with_capacity(BLOCK + 1);
    (&mut rest)
        .take(BLOCK as u64 + 1)
        .read_to_end(&mut tail)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                PackageError::NotCanonical(format!(
                    "the gzip stream does not match its checksum or length ({e})"
                ))
            }
            _ => malformed(e),
        })?;
    if tail.len() > BLOCK || tail.iter().any(|&b| b != 0) {
        return Err(PackageError::NotCanonical(
            "data after the tar end-of-archive marker".into(),
        ));
    }
    if tail.len() < BLOCK {
        return Err(PackageError::NotCanonical(
            "the tar archive does not end with its end-of-archive marker (two zero blocks)".into(),
        ));
    }
    let after = rest.inner.into_inner();
    if !after.is_empty() {
        return Err(PackageError::NotCanonical(format!(
            "{} byte(s) after the end of the gzip stream",
            after.len()
        )));
    }
    Ok(())
}
