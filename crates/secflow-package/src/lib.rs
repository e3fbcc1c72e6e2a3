//! The plugin package (`.sfpkg`): one file per plugin version, packed reproducibly and read
//! as hostile input.
//!
//! Layout of a package file:
//!
//! ```text
//! offset 0   8 bytes   magic "SFPKG\0\0\x01"
//! offset 8   8 bytes   payload length n, little-endian u64
//! offset 16  n bytes   payload: a gzip-compressed tar of regular files
//! then       4 bytes   signature block length m, little-endian u32
//! then       m bytes   signature block (empty when unsigned)
//! ```
//!
//! The payload is what gets hashed and signed; signatures live after it, so adding one never
//! changes the signed bytes. [`Envelope::split`] only frames the file (it never looks inside
//! the payload), so verification can run on raw bytes before anything is parsed.
//! [`read_payload`] then unpacks into memory under hard caps: entry count, entry size, total
//! size, compression ratio, manifest size; only regular files with plain relative names;
//! no duplicates; only the files a package may carry. Nothing is written to disk.
//!
//! Depends on `secflow-manifest` to parse the manifest inside; used by the CLI (pack, build)
//! and by verification and the registry.

mod read;
mod write;

pub use read::{Package, read_payload};
pub use write::{pack_dir, packed_files};

/// First bytes of every package file.
pub const MAGIC: &[u8; 8] = b"SFPKG\0\0\x01";

/// Hard caps on what a package may contain. The defaults suit plugins (components of a few
/// MiB); every cap has a test with an input just past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageLimits {
    /// Largest package file.
    pub max_package_bytes: u64,
    /// Most entries in the payload.
    pub max_entries: usize,
    /// Largest single file once unpacked.
    pub max_entry_bytes: u64,
    /// Largest sum of all unpacked files.
    pub max_total_bytes: u64,
    /// Largest unpacked/packed ratio (checked once past 1 MiB unpacked).
    pub max_ratio: u64,
    /// Largest signature block.
    pub max_signature_bytes: u32,
}

impl Default for PackageLimits {
    fn default() -> Self {
        PackageLimits {
            max_package_bytes: 64 << 20,
            max_entries: 1000,
            max_entry_bytes: 32 << 20,
            max_total_bytes: 128 << 20,
            max_ratio: 100,
            max_signature_bytes: 1 << 20,
        }
    }
}

/// Why a package was refused. Each message names the entry or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("not a SecFlow package: {0}")]
    NotAPackage(String),
    #[error("package is truncated: {0}")]
    Truncated(String),
    #[error("package exceeds a limit: {0}")]
    TooLarge(String),
    #[error("package payload is malformed: {0}")]
    Malformed(String),
    /// The payload decodes, but not from the one byte sequence a package is: a signature
    /// over it would vouch for bytes the reader never looks at.
    #[error("package payload is not canonical: {0}")]
    NotCanonical(String),
    #[error("package entry `{entry}` refused: {reason}")]
    BadEntry { entry: String, reason: String },
    #[error("package manifest is invalid: {0}")]
    Manifest(#[from] secflow_manifest::ManifestError),
    #[error("cannot pack {path}: {reason}")]
    Pack { path: String, reason: String },
}

/// A package file split into its parts, unparsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The signed bytes (gzip tar).
    pub payload: &'a [u8],
    /// The signature block, opaque here.
    pub signatures: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Frames a package file. Checks only the magic, the lengths and the size caps.
    pub fn split(bytes: &'a [u8], limits: &PackageLimits) -> Result<Envelope<'a>, PackageError> {
        if bytes.is_empty() {
            return Err(PackageError::NotAPackage("the file is empty".into()));
        }
        if bytes.len() as u64 > limits.max_package_bytes {
            return Err(PackageError::TooLarge(format!(
                "file is {} bytes; the limit is {}",
                bytes.len(),
                limits.max_package_bytes
            )));
        }
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(PackageError::NotAPackage(
                "missing the SFPKG header; build packages with `secflow plugin pack`".into(),
            ));
        }
        let rest = &bytes[MAGIC.len()..];
        let len_bytes: [u8; 8] = rest
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| PackageError::Truncated("the payload length is cut off".into()))?;
        let payload_len = u64::from_le_bytes(len_bytes);
        let rest = &rest[8..];
        if payload_len > rest.len() as u64 {
            return Err(PackageError::Truncated(format!(
                "the header announces a {payload_len}-byte payload but only {} bytes follow",
                rest.len()
            )));
        }
        let (payload, rest) = rest.split_at(payload_len as usize);
        let sig_len_bytes: [u8; 4] =
            rest.get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    PackageError::Truncated("the signature block length is cut off".into())
                })?;
        let sig_len = u32::from_le_bytes(sig_len_bytes);
        if sig_len > limits.max_signature_bytes {
            return Err(PackageError::TooLarge(format!(
                "signature block of {sig_len} bytes; the limit is {}",
                limits.max_signature_bytes
            )));
        }
        let rest = &rest[4..];
        if (sig_len as usize) != rest.len() {
            return Err(if (sig_len as usize) > rest.len() {
                PackageError::Truncated(format!(
                    "the signature block announces {sig_len} bytes but {} follow",
                    rest.len()
                ))
            } else {
                PackageError::Malformed(format!(
                    "{} unexpected bytes after the signature block",
                    rest.len() - sig_len as usize
                ))
            });
        }
        Ok(Envelope {
            payload,
            signatures: rest,
        })
    }

    /// SHA-256 of the payload, hex: the package digest that signatures and grants bind to.
    pub fn digest(&self) -> String {
        payload_digest(self.payload)
    }
}

/// SHA-256 of payload bytes, hex.
pub fn payload_digest(payload: &[u8]) -> String {
    secflow_io::sha256_hex(payload)
}

/// Assembles a package file from a payload and a signature block.
pub fn assemble(payload: &[u8], signatures: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 12 + payload.len() + signatures.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&(signatures.len() as u32).to_le_bytes());
    out.extend_from_slice(signatures);
    out
}

/// Top-level documentation files a package may carry.
pub const DOC_FILES: [&str; 7] = [
    "README",
    "README.md",
    "README.txt",
    "LICENSE",
    "LICENSE.md",
    "LICENSE.txt",
    "NOTICE",
];

/// Which files a package may carry besides the manifest and the component: the
/// [`DOC_FILES`] and anything under `assets/`.
pub(crate) fn is_optional_file(path: &str) -> bool {
    DOC_FILES.contains(&path)
        || path
            .strip_prefix("assets/")
            .is_some_and(|rest| !rest.is_empty())
}
