//! The demo's table, JSON and SARIF and the main error messages, pinned as snapshots
//! (`tests/snapshots/`, `INSTA_UPDATE=always` to bless a deliberate change). Paths, times,
//! sizes, versions and digests are filtered out; everything else a user sees is pinned.

mod common;

use common::{code, demo, repo, secflow, text};

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    let canonical = std::fs::canonicalize(repo()).unwrap().display().to_string();
    s.add_filter(&regex_escape(&canonical), "[repo]");
    s.add_filter(&regex_escape(&repo().display().to_string()), "[repo]");
    s.add_filter(r"/tmp/[A-Za-z0-9_./-]+", "[tmp]");
    s.add_filter(r#""(started_at|time)": "[^"]*""#, r#""$1": "[time]""#);
    s.add_filter(
        r#""(duration_ms|time_ms|peak_memory_bytes|bytes_scanned|wall_time_us)": [0-9.e+-]+"#,
        r#""$1": [n]"#,
    );
    s.add_filter(
        r#""(version|semanticVersion)": "[^"]*""#,
        r#""$1": "[version]""#,
    );
    s.add_filter(
        r#""(digest|sha256)": "[0-9a-f]{64}""#,
        r#""$1": "[digest]""#,
    );
    s.add_filter(r"\b\d+(\.\d+)? ?(ms|s|µs)\b", "[duration]");
    // Columns padded to the width of a duration or size shift with it.
    s.add_filter(r" +\[(duration|size)\]", " [$1]");
    s.add_filter(r"\b\d+(\.\d+)? ?(B|KiB|MiB|GiB)\b", "[size]");
    s.add_filter(r"\b\d+(\.\d+)? files/s\b", "[rate] files/s");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// The demo scanned in `format`, as printed on stdout.
fn demo_report(format: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = secflow(home.path())
        .arg("scan")
        .arg(demo())
        .args(["--format", format, "--color", "never"])
        // The table wraps to 100 columns, as on a terminal that wide.
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{format}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn the_demo_report_in_every_format_is_pinned() {
    let settings = settings();
    for format in ["table", "json", "sarif"] {
        let report = demo_report(format);
        settings.bind(|| insta::assert_snapshot!(format!("demo-{format}"), report));
    }
}

#[test]
fn the_main_error_messages_are_pinned() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    /// A name, the arguments, and environment variables to set.
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "scan-missing-target",
            vec!["scan", "/nonexistent/target"],
            vec![],
        ),
        (
            "scan-unknown-plugin",
            vec!["scan", ".", "--plugin", "nope"],
            vec![],
        ),
        ("scan-jobs-zero", vec!["scan", ".", "--jobs", "0"], vec![]),
        (
            "scan-bad-exclude",
            vec!["scan", ".", "--exclude", "a[b"],
            vec![],
        ),
        ("run-unknown-plugin", vec!["run", "nope"], vec![]),
        (
            "run-missing-input",
            vec!["run", "data-processor", "--action", "aggregate"],
            vec![],
        ),
        ("info-not-installed", vec!["plugin", "info", "nope"], vec![]),
        (
            "install-missing-file",
            vec!["plugin", "install", "/nonexistent/x.sfpkg"],
            vec![],
        ),
        (
            "audit-since-not-a-time",
            vec!["audit", "log", "--since", "yesterday"],
            vec![],
        ),
        (
            "sandbox-cannot-be-off",
            vec!["plugin", "list"],
            vec![("SECFLOW_SANDBOX_ENABLED", "false")],
        ),
        (
            "verification-cannot-be-off",
            vec!["plugin", "list"],
            vec![("SECFLOW_SIGNATURE_VERIFICATION", "false")],
        ),
    ];
    let settings = settings();
    let mut shown = String::new();
    for (name, args, env) in cases {
        let mut cmd = secflow(h);
        cmd.current_dir(repo()).args(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        shown.push_str(&format!(
            "## {name}\n$ secflow {}\nexit {}\n{}\n\n",
            args.join(" "),
            code(&out),
            text(&out.stderr).trim_end()
        ));
    }
    settings.bind(|| insta::assert_snapshot!("error-messages", shown));
}
