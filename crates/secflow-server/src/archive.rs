//! Unpacking an uploaded scan target (`.tar.gz`, `.tar` or `.zip`) into a fresh directory,
//! treating the archive as hostile: no entry may leave the directory (absolute paths, `..`,
//! Windows prefixes), links and devices are refused, and the number of entries, each file's
//! size and the total unpacked size are capped while reading, so a bomb stops at the cap
//! instead of filling the disk. Sizes declared in headers are never trusted.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Caps on what one archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: u64,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_file_bytes: 64 << 20,
            max_total_bytes: 1 << 30,
        }
    }
}

/// Why an archive was refused. Each names the entry and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the body is not a .tar.gz, .tar or .zip archive")]
    UnknownFormat,
    #[error(
        "entry `{0}` leaves the target directory (absolute path or `..`); archives must hold relative paths"
    )]
    Traversal(String),
    #[error("entry `{0}` is a link or a special file; archive the files themselves")]
    Link(String),
    #[error("the archive has more than {0} entries")]
    TooManyEntries(u64),
    #[error("entry `{0}` unpacks to more than {1} bytes")]
    FileTooLarge(String, u64),
    #[error("the archive unpacks to more than {0} bytes")]
    TooLarge(u64),
    #[error("the archive is damaged: {0}")]
    Corrupt(String),
    #[error("cannot write the unpacked target: {0}")]
    Io(std::io::Error),
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
}

/// Unpacks `bytes` into `dest` (an empty directory).
pub fn unpack(bytes: &[u8], dest: &Path, limits: Limits) -> Result<Unpacked, ArchiveError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let decoder = flate2::read::GzDecoder::new(bytes);
        unpack_tar(decoder, dest, limits)
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        unpack_zip(bytes, dest, limits)
    } else if bytes.len() >= 262 && &bytes[257..262] == b"ustar" {
        unpack_tar(bytes, dest, limits)
    } else {
        Err(ArchiveError::UnknownFormat)
    }
}

/// The path an entry may be written to, or why not.
fn safe_path(dest: &Path, name: &str) -> Result<Option<PathBuf>, ArchiveError> {
    let relative = Path::new(name);
    let mut out = dest.to_path_buf();
    let mut depth = 0;
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                out.push(part);
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::Traversal(name.to_string()));
            }
        }
    }
    if name.contains('\\') && name.contains("..") {
        return Err(ArchiveError::Traversal(name.to_string()));
    }
    Ok((depth > 0).then_some(out))
}

struct Budget {
    limits: Limits,
    entries: u64,
    total: u64,
    files: u64,
}

impl Budget {
    fn entry(&mut self) -> Result<(), ArchiveError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries(self.limits.max_entries));
        }
        Ok(())
    }

    /// Copies at most the caps' worth of `reader` into `path`.
    fn write(
        &mut self,
        name: &str,
        path: &Path,
        reader: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(ArchiveError::Io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    ArchiveError::Corrupt(format!("entry `{name}` appears twice"))
                }
                _ => ArchiveError::Io(e),
            })?;
        let room = self
            .limits
            .max_file_bytes
            .min(self.limits.max_total_bytes - self.total);
        let written = std::io::copy(&mut reader.take(room + 1), &mut file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData
                || e.kind() == std::io::ErrorKind::UnexpectedEof
            {
                ArchiveError::Corrupt(format!("entry `{name}`: {e}"))
            } else {
                ArchiveError::Io(e)
            }
        })?;
        if written > room {
            return Err(if written > self.limits.max_file_bytes {
                ArchiveError::FileTooLarge(name.to_string(), self.limits.max_file_bytes)
            } else {
                ArchiveError::TooLarge(self.limits.max_total_bytes)
            });
        }
        self.total += written;
        self.files += 1;
        Ok(())
    }
}

fn unpack_tar(reader: impl Read, dest: &Path, limits: Limits) -> Result<Unpacked, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut budget = Budget {
        limits,
        entries: 0,
        total: 0,
        files: 0,
    };
    let corrupt = |e: std::io::Error| ArchiveError::Corrupt(e.to_string());
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        budget.entry()?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        let Some(path) = safe_path(dest, &name)? else {
            continue;
        };
        if kind.is_dir() {
            std::fs::create_dir_all(&path).map_err(ArchiveError::Io)?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            budget.write(&name, &path, &mut entry)?;
        } else if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        } else {
            return Err(ArchiveError::Link(name));
        }
    }
    Ok(Unpacked {
        files: budget.files,
        bytes: budget.total,
    })
}

fn unpack_zip(bytes: &[u8], dest: &Path, limits: Limits) -> Result<Unpacked, ArchiveError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    let mut budget = Budget {
        limits,
        entries: 0,
        total: 0,
        files: 0,
    };
    if archive.len() as u64 > limits.max_entries {
        return Err(ArchiveError::TooManyEntries(limits.max_entries));
    }
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        budget.entry()?;
        let name = entry.name().to_string();
        let Some(path) = safe_path(dest, &name)? else {
            continue;
        };
        if entry.is_symlink() {
            return Err(ArchiveError::Link(name));
        }
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(ArchiveError::Io)?;
        } else {
            budget.write(&name, &path, &mut entry)?;
        }
    }
    Ok(Unpacked {
        files: budget.files,
        bytes: budget.total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the raw name as an attacker would.
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_plain_archive_unpacks() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = tar_gz(&[("src/a.py", b"x = 1\n"), ("./b.txt", b"hi")]);
        let out = unpack(&bytes, dir.path(), Limits::default()).unwrap();
        assert_eq!(out, Unpacked { files: 2, bytes: 8 });
        assert_eq!(
            std::fs::read(dir.path().join("src/a.py")).unwrap(),
            b"x = 1\n"
        );
    }

    #[test]
    fn traversal_links_and_bombs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["../evil", "a/../../evil", "/etc/passwd"] {
            let err = unpack(&tar_gz(&[(name, b"x")]), dir.path(), Limits::default()).unwrap_err();
            assert!(matches!(err, ArchiveError::Traversal(_)), "{name}: {err}");
        }
        assert!(!dir.path().parent().unwrap().join("evil").exists());

        // A symlink entry.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "link", "/etc/passwd")
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(&bytes, dir.path(), Limits::default()),
            Err(ArchiveError::Link(_))
        ));

        // A gzip bomb: 64 MiB of zeros in a few KiB; the cap stops it.
        let zeros = vec![0u8; 64 << 20];
        let bomb = tar_gz(&[("zeros", &zeros)]);
        assert!(bomb.len() < 1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_file_bytes: 1 << 20,
            ..Limits::default()
        };
        assert!(matches!(
            unpack(&bomb, dir.path(), limits),
            Err(ArchiveError::FileTooLarge(_, _))
        ));
        let limits = Limits {
            max_total_bytes: 1 << 20,
            ..Limits::default()
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(&bomb, dir.path(), limits),
            Err(ArchiveError::TooLarge(_))
        ));

        let many: Vec<(String, &[u8])> = (0..20).map(|i| (format!("f{i}"), &b"x"[..])).collect();
        let refs: Vec<(&str, &[u8])> = many.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_entries: 10,
            ..Limits::default()
        };
        assert!(matches!(
            unpack(&tar_gz(&refs), dir.path(), limits),
            Err(ArchiveError::TooManyEntries(10))
        ));
        assert!(matches!(
            unpack(b"not an archive", dir.path(), limits),
            Err(ArchiveError::UnknownFormat)
        ));
        // Truncated gzip.
        let truncated = &tar_gz(&[("a", b"hello world")])[..20];
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(truncated, dir.path(), Limits::default()),
            Err(ArchiveError::Corrupt(_))
        ));
    }

    #[test]
    fn zip_entries_are_checked_too() {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("../escape.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"x").unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(&bytes, dir.path(), Limits::default()),
            Err(ArchiveError::Traversal(_))
        ));

        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("ok/a.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"abc").unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            unpack(&bytes, dir.path(), Limits::default()).unwrap(),
            Unpacked { files: 1, bytes: 3 }
        );
    }

    /// Mutated archives (flipped bytes, cut at every length, spliced headers) never panic,
    /// never write outside the destination, and stay within the limits. A deterministic
    /// cousin of `fuzz/fuzz_targets/archive.rs`, so CI runs it.
    #[test]
    fn mutated_archives_are_refused_or_stay_inside() {
        let seeds = [
            tar_gz(&[("src/a.py", b"x = 1\n"), ("dir/b.txt", b"hello")]),
            {
                use std::io::Write;
                let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
                zip.start_file("ok/a.txt", zip::write::SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(b"abcdef").unwrap();
                zip.finish().unwrap().into_inner()
            },
        ];
        let limits = Limits {
            max_entries: 16,
            max_file_bytes: 4096,
            max_total_bytes: 8192,
        };
        let outside = tempfile::tempdir().unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for seed in &seeds {
            for cut in (0..seed.len()).step_by(3) {
                cases.push(seed[..cut].to_vec());
            }
            for _ in 0..400 {
                let mut m = seed.clone();
                for _ in 0..1 + next() % 8 {
                    let at = (next() as usize) % m.len();
                    m[at] = next() as u8;
                }
                cases.push(m);
            }
        }
        for case in cases {
            let root = tempfile::tempdir_in(outside.path()).unwrap();
            let dest = root.path().join("t");
            std::fs::create_dir(&dest).unwrap();
            if let Ok(out) = unpack(&case, &dest, limits) {
                assert!(out.files <= limits.max_entries && out.bytes <= limits.max_total_bytes);
            }
            // Nothing beside the destination, in it only regular files and directories.
            let beside: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
            assert_eq!(beside.len(), 1, "an entry escaped the destination");
            for entry in walk(&dest) {
                let kind = std::fs::symlink_metadata(&entry).unwrap().file_type();
                assert!(kind.is_file() || kind.is_dir(), "{}", entry.display());
            }
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }
}
