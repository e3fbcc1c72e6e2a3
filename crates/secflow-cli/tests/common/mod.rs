//! Helpers shared by the CLI tests: the real `secflow` binary in a private home, and plugin
//! directories holding real components built from `plugins/`.

#![allow(dead_code)]

pub mod http;

use secflow_plugin_artifacts as artifacts;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo target of the README.
pub fn demo() -> PathBuf {
    repo().join("examples/vulnerable-shop")
}

/// `secflow` with `SECFLOW_HOME` set to `home` and none of the settings a developer's
/// environment may hold (log filter, gate, policy directory, jobs, file size).
pub fn secflow(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secflow"));
    cmd.env("SECFLOW_HOME", home)
        .env_remove("SECFLOW_LOG")
        .env_remove("SECFLOW_FAIL_ON")
        .env_remove("SECFLOW_POLICY_DIR")
        .env_remove("SECFLOW_JOBS")
        .env_remove("SECFLOW_MAX_FILE_SIZE")
        .env_remove("SECFLOW_SECURITY_POLICY_FILE")
        .env_remove("SECFLOW_AUDIT_LOG_LEVEL")
        .env_remove("SECFLOW_ALLOW_UNSIGNED_PLUGINS")
        .env_remove("SECFLOW_SIGNATURE_VERIFICATION")
        .env_remove("SECFLOW_SANDBOX_ENABLED")
        .env_remove("COLUMNS");
    cmd
}

/// Runs `secflow ARGS` in `home` to completion.
pub fn run(home: &Path, args: &[&str]) -> Output {
    secflow(home).args(args).output().unwrap()
}

/// stdout then stderr, as one text.
pub fn all_text(out: &Output) -> String {
    text(&out.stdout) + &text(&out.stderr)
}

/// Asserts the exit code and that stderr says what went wrong.
pub fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
}

/// Runs `cmd` with `stdin` on its standard input; returns what it printed.
pub fn run_with_stdin(mut cmd: Command, stdin: impl AsRef<[u8]>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_ref())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

/// A plugin directory holding `manifest` and a copy of a built component.
pub fn plugin_dir(root: &Path, name: &str, manifest: &str, component: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    std::fs::copy(component, dir.join("plugin.wasm")).unwrap();
    dir
}

/// The hostile test plugin with its own manifest plus `extra` (appended TOML).
pub fn hostile_dir(root: &Path, extra: &str) -> PathBuf {
    let manifest =
        std::fs::read_to_string(Path::new(artifacts::TEST_HOSTILE.dir).join("plugin.toml"))
            .unwrap();
    plugin_dir(
        root,
        "hostile",
        &format!("{manifest}\n{extra}"),
        artifacts::TEST_HOSTILE.component,
    )
}
