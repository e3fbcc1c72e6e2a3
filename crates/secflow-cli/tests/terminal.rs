//! Text a plugin controls never reaches a terminal raw: its panic message, log lines and
//! fields, stdout, stderr and returned value, in plain text and `--json`. The outputs are
//! pinned as snapshots (`tests/snapshots/`, `INSTA_UPDATE=always` to bless), with timings
//! and sizes filtered out.

mod common;

use common::*;

/// A character a terminal would act on (secflow_term's definition); newlines are fine.
fn raw_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| secflow_term::is_unsafe(*c) && *c != '\n')
        .collect()
}

fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\d+\.\d+ ms", "[ms] ms"),
        (r"peak memory \d+ KiB", "peak memory [n] KiB"),
        (r"host peak RSS \d+ MiB", "host peak RSS [n] MiB"),
        (r"src/lib\.rs:\d+:\d+", "src/lib.rs:[line]"),
        (
            r#""(wall_time_us|peak_memory_bytes|peak_rss_bytes|bytes_in|bytes_out|stdout_bytes|stderr_bytes)": \d+"#,
            r#""$1": [n]"#,
        ),
    ]
}

#[test]
fn plugin_text_never_reaches_the_terminal_raw() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = hostile_dir(root.path(), "");
    for (action, json) in [
        ("panic-with-controls", false),
        ("panic-with-controls", true),
        ("print-controls", false),
        ("print-controls", true),
    ] {
        let mut cmd = secflow(home.path());
        cmd.args(["run", "--dev"])
            .arg(&dir)
            .args(["--action", action]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let name = format!("{action}{}", if json { "-json" } else { "" });
        assert!(
            raw_controls(&stdout).is_empty(),
            "{name} stdout: {stdout:?}"
        );
        assert!(
            raw_controls(&stderr).is_empty(),
            "{name} stderr: {stderr:?}"
        );
        let all = format!("{stdout}{stderr}");
        // The text is still there, visibly escaped.
        if json {
            assert!(
                all.contains("\\u001b[31mred") && all.contains("\\u202e"),
                "{name}: {all}"
            );
        } else {
            assert!(
                all.contains("\\u{1b}[31mred") && all.contains("\\u{202e}"),
                "{name}: {all}"
            );
        }
        let expected_code = if action.starts_with("panic") { 4 } else { 0 };
        assert_eq!(code(&out), expected_code, "{name}: {stderr}");
        insta::with_settings!({ filters => filters() }, {
            insta::assert_snapshot!(name, format!("--- stdout\n{stdout}--- stderr\n{stderr}"));
        });
    }
}

#[test]
fn errors_are_one_line_and_json_errors_are_json() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = hostile_dir(root.path(), "");
    // A trap: one line naming the cause, no wasm backtrace (that is for `-v`).
    let out = secflow(home.path())
        .args(["run", "--dev"])
        .arg(&dir)
        .args(["--action", "out-of-bounds"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), 4, "{stderr}");
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(error_lines[0].contains("out of bounds"), "{stderr}");
    assert!(
        !stderr.contains("wasm backtrace") && !stderr.contains("<wasm function"),
        "{stderr}"
    );
    let verbose = secflow(home.path())
        .args(["-v", "run", "--dev"])
        .arg(&dir)
        .args(["--action", "out-of-bounds"])
        .output()
        .unwrap();
    assert!(
        text(&verbose.stderr).contains("wasm backtrace"),
        "-v keeps the details"
    );

    // A usage error with --json is a JSON document on stdout.
    let out = secflow(home.path())
        .args(["plugin", "info", "no-such-plugin", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(doc["error"]["exit_code"], code(&out));
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-plugin"),
        "{doc}"
    );
}

#[test]
fn manifest_text_is_escaped_in_every_command() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    // A package whose name, description and capability reason carry terminal controls.
    let manifest = r#"id = "sneaky"
version = "0.1.0"
kind = "action"
name = "Sneaky \u001b]0;pwned\u0007"
description = "clears \u001b[2J the screen \u202egnisrever\u202c"

[capabilities.kv]
reason = "keeps state \u001b[31m in red"
"#;
    let dir = plugin_dir(
        root.path(),
        "sneaky",
        manifest,
        secflow_plugin_artifacts::TEST_NOOP.component,
    );
    let pkg = root.path().join("sneaky.sfpkg");
    let out = secflow(home.path())
        .args(["plugin", "pack"])
        .arg(&dir)
        .arg("-o")
        .arg(&pkg)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let outputs = [
        vec!["plugin", "install", pkg.to_str().unwrap(), "--dev", "--yes"],
        vec!["plugin", "info", "sneaky"],
        vec!["plugin", "list"],
        vec!["plugin", "search", "sneaky"],
        vec!["plugin", "permissions", "sneaky"],
        vec!["plugin", "info", "sneaky", "--json"],
        vec!["audit", "log"],
    ];
    let mut shown = String::new();
    for args in outputs {
        let out = secflow(home.path()).args(&args).output().unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(code(&out), 0, "{args:?}: {stderr}");
        assert!(
            raw_controls(&stdout).is_empty(),
            "{args:?} stdout: {stdout:?}"
        );
        assert!(
            raw_controls(&stderr).is_empty(),
            "{args:?} stderr: {stderr:?}"
        );
        shown.push_str(&stdout);
        shown.push_str(&stderr);
    }
    // The text was shown, escaped: the checks above are not vacuous.
    for escaped in ["\\u{1b}[2J", "\\u{202e}", "\\u{1b}[31m", "\\u001b]0;pwned"] {
        assert!(shown.contains(escaped), "{escaped} in {shown}");
    }
}
