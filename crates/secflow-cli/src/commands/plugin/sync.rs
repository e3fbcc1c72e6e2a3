//! `secflow plugin sync DIR [--watch]`: every `*.sfpkg` in DIR goes through the same
//! admission as `install`/`upgrade` (verification, policy, approval, dependencies). A new id
//! is installed, a newer version upgrades (held if it asks for more and `--yes` was not
//! given); an older version is left alone; an invalid or refused package is skipped with a
//! warning and the rest go on. With `--watch` the directory is polled and a new or changed
//! file is admitted when it appears: the hot reload of the long-running modes.

use crate::cli::InstallArgs;
use crate::exit::{Exit, fail};
use secflow_host::{Host, InstallMode};
use std::path::{Path, PathBuf};

pub fn run(host: &Host, dir: &Path, yes: bool, watch: bool, interval: f64) -> anyhow::Result<Exit> {
    if !dir.is_dir() {
        return Err(fail(
            Exit::Usage,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let interval = std::time::Duration::from_secs_f64(interval.clamp(0.05, 3600.0));
    // What each file looked like when it was last admitted (or refused).
    let mut seen: std::collections::HashMap<PathBuf, (std::time::SystemTime, u64)> =
        std::collections::HashMap::new();
    loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| fail(Exit::Usage, format!("cannot list {}: {e}", dir.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sfpkg") && p.is_file())
            .collect();
        files.sort();
        let mut refused = 0;
        for file in files {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let stamp = (meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len());
            if seen.get(&file) == Some(&stamp) {
                continue;
            }
            seen.insert(file.clone(), stamp);
            let args = InstallArgs {
                files: vec![file.clone()],
                from: None,
                yes,
                grants: Vec::new(),
                mounts: Vec::new(),
                dev: false,
                allow_rollback: false,
                json: false,
            };
            if let Err(e) = super::install::run(host, args, InstallMode::Sync) {
                refused += 1;
                errln!("warning: skipped {}: {e:#}", file.display());
            }
        }
        if !watch {
            return Ok(if refused == 0 {
                Exit::Success
            } else {
                Exit::Refused
            });
        }
        std::thread::sleep(interval);
    }
}
