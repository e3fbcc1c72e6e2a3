//! The file helpers every SecFlow store shares, in one copy: a crash or a power cut never
//! leaves half a file ([`write_atomic`]), secrets are created private from their first byte
//! ([`Mode::Private`]), and content is named by one digest ([`sha256_hex`]).
//!
//! Two ways to write, for two kinds of path:
//! - [`write_atomic`] for the host's own state (keys, blobs, caches): the path itself is
//!   replaced through a temporary file and a rename. Nothing at the path is followed or
//!   opened, so a symlink or FIFO planted in a state directory cannot redirect or block
//!   the write.
//! - [`write_output`] for a path a user named (`-o FILE`): a report written to `/dev/null`,
//!   a FIFO, a socket or `/dev/stdout` is written in place (renaming a temporary file over a
//!   device node would turn it into a regular file for every program on the machine), and
//!   a symlink is followed to the file it names instead of being replaced by one.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Who may read a file written by [`write_atomic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0600: keys, host secrets.
    Private,
    /// 0644: reports, packages, policies (readable by other users, writable by the owner).
    Shared,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Private => 0o600,
            Mode::Shared => 0o644,
        }
    }
}

/// A file's identity and version as `stat` sees it (size, modification time, inode), or
/// `None` when it does not exist: what caches compare to notice that another process
/// replaced or wrote the file. Modification times are coarse (a few milliseconds), so a
/// cache also bounds how long it trusts an unchanged stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp(Option<(u64, Option<std::time::SystemTime>, u64)>);

impl FileStamp {
    pub fn of(path: &Path) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp(
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.len(), m.modified().ok(), m.ino())),
        )
    }
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The id SecFlow names a public key by (trust store, audit checkpoints): hex of the first
/// 16 bytes of the SHA-256 of the key's bytes.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(&Sha256::digest(public_key)[..16])
}

/// Sets the permission bits of `path` (no-op off Unix).
pub fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Creates `dir` (and its parents) and makes it private to the owner (0700).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    restrict(dir, 0o700)
}

/// Flushes a directory's entries to disk, so a rename inside it survives a power cut.
/// Best effort: some file systems refuse to open directories for syncing.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes a file of the host's own state so that a crash leaves either the old content or
/// the new one: a temporary file in the same directory (created with `mode` from its first
/// byte), fsynced, renamed over `path`, directory fsynced. Whatever was at `path` (a file,
/// a symlink, a FIFO) is replaced, never followed or opened.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    replace(path, bytes, mode)
}

/// Writes a file a user named. A new path or a regular file is replaced as by
/// [`write_atomic`]; a symlink is resolved first, so the file it points to is replaced and
/// the link stays; anything else (a character or block device, a FIFO, a socket) is opened
/// and written in place, never replaced, and keeps its mode.
pub fn write_output(path: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    // What the kernel resolves the path to decides first: `/dev/stdout` on a pipe is a
    // FIFO reached through `/proc/self/fd/1`, which names no file to rename over.
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        }
        Ok(meta) if !meta.is_file() => {
            // A device, a FIFO or a socket: write through it.
            let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
            file.write_all(bytes)?;
            return file.flush();
        }
        _ => {}
    }
    let target = resolve(path)?;
    if target != path {
        // A symlink is followed only to a file in the link's own directory tree
        // (`latest.sarif -> reports/today.sarif`): a link committed into a repository
        // (`secflow.sarif -> ~/.bashrc`) must not make a scan overwrite a file elsewhere.
        let link_dir = absolute_parent(path)?;
        let target_dir = absolute_parent(&target)?;
        if !target_dir.starts_with(&link_dir) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symlink to {}, outside its directory; write to the target itself or remove the link",
                    path.display(),
                    target.display()
                ),
            ));
        }
    }
    // Replacing a file keeps its permissions when they are narrower (a private report
    // stays private).
    let mode = match std::fs::metadata(&target) {
        Ok(meta) if meta.is_file() && permission_bits(&meta) & 0o077 == 0 => Mode::Private,
        _ => mode,
    };
    replace(&target, bytes, mode)
}

/// The canonical directory a path's file lives in (the file itself may not exist).
fn absolute_parent(path: &Path) -> std::io::Result<PathBuf> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(parent)
}

#[cfg(unix)]
fn permission_bits(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn permission_bits(_: &std::fs::Metadata) -> u32 {
    0o644
}

fn replace(target: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode.bits()));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    // The umask may have narrowed the creation mode; a shared report is meant to be 0644.
    restrict(tmp.path(), mode.bits())?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

/// Follows symlinks at `path` (a chain of them, to a bounded depth) to the path they name;
/// a dangling link resolves to where it points, so writing creates the target.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&current)?;
                current = if link.is_absolute() {
                    link
                } else {
                    current.parent().unwrap_or(Path::new(".")).join(link)
                };
            }
            _ => return Ok(current),
        }
    }
    Err(std::io::Error::other(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes a FIFO at `path` (with the system's `mkfifo`: the crate has no unsafe code).
    #[cfg(unix)]
    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mkfifo {}", path.display());
    }

    #[test]
    fn replaces_a_regular_file_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new", Mode::Shared).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644);
            write_atomic(&path, b"secret", Mode::Private).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_followed_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.txt");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).unwrap();
        write_output(&link, b"new", Mode::Shared).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_out_of_its_directory_is_refused_and_private_files_stay_private() {
        use std::os::unix::fs::PermissionsExt;
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("bashrc");
        std::fs::write(&victim, "keep").unwrap();
        let repo = tempfile::tempdir().unwrap();
        let link = repo.path().join("secflow.sarif");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = write_output(&link, b"{}", Mode::Shared).unwrap_err();
        assert!(err.to_string().contains("outside its directory"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        // A 0600 report replaced by a new one stays 0600.
        let private = repo.path().join("private.json");
        std::fs::write(&private, "old").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_output(&private, b"new", Mode::Shared).unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_a_fifo_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p");
        mkfifo(&fifo);
        let via = dir.path().join("via-link");
        std::os::unix::fs::symlink(&fifo, &via).unwrap();
        let reader = std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap());
        write_output(&via, b"through", Mode::Shared).unwrap();
        assert_eq!(reader.join().unwrap(), "through");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_written_in_place() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        mkfifo(&fifo);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        write_output(&fifo, b"through the pipe", Mode::Shared).unwrap();
        assert_eq!(reader.join().unwrap(), "through the pipe");
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_character_device_stays_one() {
        use std::os::unix::fs::FileTypeExt;
        // /dev/null accepts writes from everyone; as root a rename over it would replace it.
        write_output(Path::new("/dev/null"), b"discarded", Mode::Shared).unwrap();
        assert!(
            std::fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }

    #[cfg(unix)]
    #[test]
    fn state_writes_replace_a_planted_symlink_or_fifo_instead_of_following_it() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        // A symlink planted where a key or cache entry will be written: the victim file
        // stays untouched and the link becomes the new file.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let entry = dir.path().join("entry.cwasm");
        std::os::unix::fs::symlink(&victim, &entry).unwrap();
        write_atomic(&entry, b"state", Mode::Private).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&entry).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&entry).unwrap(), "state");
        // A FIFO planted there would block a write through it forever; it is replaced.
        let fifo = dir.path().join("host.key");
        mkfifo(&fifo);
        write_atomic(&fifo, b"secret", Mode::Private).unwrap();
        let meta = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(!meta.file_type().is_fifo() && meta.is_file());
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_output(dir.path(), b"x", Mode::Shared).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn digest_is_lower_hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
