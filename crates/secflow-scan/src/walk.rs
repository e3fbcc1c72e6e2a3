//! Walking the target: which files a scan reads, and why it skips the others.
//!
//! `.gitignore` (even outside a git checkout), `.ignore` and `.secflowignore` are honoured;
//! hidden files are scanned (secrets live in `.env` files) but `.git` is not. Symlinks are
//! followed only when they resolve inside the target, and loops are reported, not followed.
//! Binary files (a NUL byte in the first 8 KiB, as git and ripgrep decide) and files above
//! the size cap are skipped with the reason recorded.

use ignore::WalkBuilder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a file was not scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    Binary,
    TooLarge,
    SymlinkOutsideTarget,
    SymlinkLoop,
    Unreadable,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Binary => "binary",
            SkipReason::TooLarge => "too-large",
            SkipReason::SymlinkOutsideTarget => "symlink-outside-target",
            SkipReason::SymlinkLoop => "symlink-loop",
            SkipReason::Unreadable => "unreadable",
        }
    }
}

/// One thing the walk found.
#[derive(Debug)]
pub enum Walked {
    File {
        /// Relative to the root, `/`-separated.
        path: String,
        content: Vec<u8>,
    },
    Skipped {
        path: String,
        reason: SkipReason,
        detail: String,
    },
}

/// Settings of the walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub max_file_size: u64,
    /// Paths to leave out, as gitignore-style globs relative to the root (`--exclude`).
    pub exclude: Vec<String>,
    /// Honour `.gitignore`, `.ignore` and `.secflowignore` (off with `--no-ignore`).
    pub respect_ignore_files: bool,
}

impl Default for WalkOptions {
    fn default() -> WalkOptions {
        WalkOptions {
            max_file_size: 10 << 20,
            exclude: Vec::new(),
            respect_ignore_files: true,
        }
    }
}

/// Checks exclusion globs before a scan starts: a malformed one is the user's to fix.
pub fn check_excludes(root: &Path, globs: &[String]) -> Result<(), String> {
    overrides(root, globs).map(|_| ())
}

/// The `ignore` crate's overrides for `--exclude` globs: each one a negated match.
fn overrides(root: &Path, globs: &[String]) -> Result<ignore::overrides::Override, String> {
    let mut builder = ignore::overrides::OverrideBuilder::new(root);
    for glob in globs {
        builder
            .add(&format!("!{glob}"))
            .map_err(|e| format!("exclude pattern `{glob}`: {e}"))?;
    }
    builder.build().map_err(|e| e.to_string())
}

/// What the walk did besides visiting files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WalkTotals {
    /// Files left out because an ignore file (`.gitignore`, `.ignore`, `.secflowignore`)
    /// matched them or a directory above them; `--no-ignore` scans them. `--exclude` and
    /// `.git` are not counted: the user asked for those.
    pub ignored: u64,
}

/// Walks `root` (a directory or a single file), calling `visit` for every file in a stable
/// order. Stops early when `visit` returns false.
///
/// With ignore files honoured, a second walk that honours none counts what they left out,
/// so that nothing goes unscanned without the summary saying so. It reads directory entries
/// only (no file is opened), and runs only when the first walk finished.
pub fn walk(root: &Path, opts: &WalkOptions, mut visit: impl FnMut(Walked) -> bool) -> WalkTotals {
    let mut seen = 0u64;
    let finished = walk_once(
        root,
        opts,
        opts.respect_ignore_files,
        &mut |item, is_file| {
            seen += u64::from(is_file);
            match item {
                Some(item) => visit(item),
                None => true,
            }
        },
    );
    let mut totals = WalkTotals::default();
    if finished && opts.respect_ignore_files {
        let mut all = 0u64;
        walk_once(root, opts, false, &mut |_, is_file| {
            all += u64::from(is_file);
            true
        });
        totals.ignored = all.saturating_sub(seen);
    }
    totals
}

/// One walk. `visit` gets each item (None for a file entry when only counting) and whether
/// the entry was a file; returns false to stop. Returns whether the walk ran to the end.
fn walk_once(
    root: &Path,
    opts: &WalkOptions,
    ignore_files: bool,
    visit: &mut dyn FnMut(Option<Walked>, bool) -> bool,
) -> bool {
    let counting = ignore_files != opts.respect_ignore_files;
    let canonical_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let root_is_file = canonical_root.is_file();
    // Symlinked directories that lead out of the target are pruned here (never entered) and
    // reported after the walk.
    let escaped: std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>> = Default::default();
    let prune = {
        let escaped = escaped.clone();
        let canonical_root = canonical_root.clone();
        move |e: &ignore::DirEntry| {
            if e.file_name() == ".git" {
                return false;
            }
            if e.path_is_symlink()
                && e.file_type().is_some_and(|t| t.is_dir())
                && !inside(&canonical_root, e.path())
            {
                escaped.lock().unwrap().push(e.path().to_path_buf());
                return false;
            }
            true
        }
    };
    let mut builder = WalkBuilder::new(root);
    builder
        .hidden(false)
        .git_ignore(ignore_files)
        .git_global(false)
        .git_exclude(ignore_files)
        .require_git(false)
        .ignore(ignore_files)
        .parents(ignore_files)
        .follow_links(true)
        .filter_entry(prune)
        .sort_by_file_path(|a, b| a.cmp(b));
    if ignore_files {
        builder.add_custom_ignore_filename(".secflowignore");
    }
    if !opts.exclude.is_empty() {
        // Checked before the scan (`check_excludes`); an empty override excludes nothing.
        builder.overrides(
            overrides(root, &opts.exclude).unwrap_or_else(|_| ignore::overrides::Override::empty()),
        );
    }
    let walker = builder.build();
    for entry in walker {
        let (item, is_file) = match entry {
            Err(_) if counting => (None, false),
            Err(err) => {
                let (path, reason) = describe_walk_error(&err, root);
                let item = Walked::Skipped {
                    path,
                    reason,
                    detail: err.to_string(),
                };
                (Some(item), false)
            }
            Ok(entry) => {
                if !entry.file_type().is_some_and(|kind| kind.is_file()) {
                    continue;
                }
                if counting {
                    (None, true)
                } else {
                    let item = read_file(
                        root,
                        entry.path(),
                        &canonical_root,
                        root_is_file,
                        opts,
                        entry.path_is_symlink(),
                    );
                    (Some(item), true)
                }
            }
        };
        if !visit(item, is_file) {
            return false;
        }
    }
    if counting {
        return true;
    }
    for path in std::mem::take(&mut *escaped.lock().unwrap()) {
        let item = Walked::Skipped {
            path: relative(root, &path, root_is_file),
            reason: SkipReason::SymlinkOutsideTarget,
            detail: "a symlinked directory leading out of the target".into(),
        };
        if !visit(Some(item), false) {
            return false;
        }
    }
    true
}

fn read_file(
    root: &Path,
    path: &Path,
    canonical_root: &Path,
    root_is_file: bool,
    opts: &WalkOptions,
    via_symlink: bool,
) -> Walked {
    let rel = relative(root, path, root_is_file);
    if via_symlink && !inside(canonical_root, path) {
        return Walked::Skipped {
            path: rel,
            reason: SkipReason::SymlinkOutsideTarget,
            detail: String::new(),
        };
    }
    let unreadable = |rel: String, e: std::io::Error| Walked::Skipped {
        path: rel,
        reason: SkipReason::Unreadable,
        detail: e.to_string(),
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return unreadable(rel, e),
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > opts.max_file_size {
        return Walked::Skipped {
            path: rel,
            reason: SkipReason::TooLarge,
            detail: format!("{size} bytes > {} (--max-file-size)", opts.max_file_size),
        };
    }
    let mut content = Vec::with_capacity(size as usize);
    // Never read past the cap even if the file grows while we read it.
    if let Err(e) = file.take(opts.max_file_size + 1).read_to_end(&mut content) {
        return unreadable(rel, e);
    }
    if content.len() as u64 > opts.max_file_size {
        return Walked::Skipped {
            path: rel,
            reason: SkipReason::TooLarge,
            detail: format!("grew above {} bytes while read", opts.max_file_size),
        };
    }
    if is_binary(&content) {
        return Walked::Skipped {
            path: rel,
            reason: SkipReason::Binary,
            detail: String::new(),
        };
    }
    Walked::File { path: rel, content }
}

/// The git/ripgrep heuristic: a NUL byte near the start means binary.
pub fn is_binary(content: &[u8]) -> bool {
    content[..content.len().min(8192)].contains(&0)
}

fn inside(canonical_root: &Path, path: &Path) -> bool {
    path.canonicalize()
        .is_ok_and(|p| p.starts_with(canonical_root))
}

fn relative(root: &Path, path: &Path, root_is_file: bool) -> String {
    let rel: PathBuf = if root_is_file {
        path.file_name().map(PathBuf::from).unwrap_or_default()
    } else {
        path.strip_prefix(root).unwrap_or(path).to_path_buf()
    };
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn describe_walk_error(err: &ignore::Error, root: &Path) -> (String, SkipReason) {
    fn find(err: &ignore::Error, root: &Path) -> Option<(String, SkipReason)> {
        match err {
            ignore::Error::Loop { child, .. } => {
                Some((relative(root, child, false), SkipReason::SymlinkLoop))
            }
            ignore::Error::WithPath { path, err } => Some(
                find(err, root).unwrap_or((relative(root, path, false), SkipReason::Unreadable)),
            ),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                find(err, root)
            }
            ignore::Error::Partial(errs) => errs.first().and_then(|e| find(e, root)),
            _ => None,
        }
    }
    find(err, root).unwrap_or((String::new(), SkipReason::Unreadable))
}

/// Whether a file holds log lines for log analyzers: `*.log`, rotated `*.log.N`, and the
/// classic syslog names (`auth.log`, `secure`, `syslog`, `messages`).
pub fn is_log_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let base = name.split('.').next().unwrap_or(name);
    name.ends_with(".log")
        || name.contains(".log.")
        || matches!(base, "secure" | "syslog" | "messages" | "auth")
            && !name.contains(".gz")
            && (name == base
                || name[base.len()..].starts_with(".log")
                || name[base.len()..]
                    .trim_start_matches('.')
                    .chars()
                    .all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names() {
        for yes in [
            "logs/auth.log",
            "auth.log.1",
            "var/log/secure",
            "syslog",
            "x/app.log",
            "messages.2",
        ] {
            assert!(is_log_file(yes), "{yes}");
        }
        for no in [
            "auth.py",
            "secure.go",
            "logs/readme.md",
            "syslog.c",
            "catalog.json",
        ] {
            assert!(!is_log_file(no), "{no}");
        }
    }
}
