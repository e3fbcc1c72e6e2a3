//! `secflow policy` as users run it: the shipped defaults check clean, explain names the
//! deciding policies, and a broken site policy is an error naming file, line and attribute.

use std::path::Path;
use std::process::{Command, Output};

fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secflow"))
        .env("SECFLOW_HOME", home)
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn check_explain_and_a_broken_site_policy() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let dp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/data-processor");
    let dp = dp.to_str().unwrap();

    let out = run(h, &["policy", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = run(h, &["policy", "explain", "--dev", dp, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for d in v["decisions"].as_array().unwrap() {
        assert_eq!(d["decision"]["allowed"], false);
        assert_eq!(d["decision"]["policies"][0], "signature-required");
    }
    let out = run(
        h,
        &["policy", "explain", "--dev", dp, "--signed-by", "publisher"],
    );
    assert!(
        text(&out).contains("allow") && text(&out).contains("allow-admitted"),
        "{}",
        text(&out)
    );
    let out = run(h, &["policy", "explain", "--dev", dp, "--dev-mode"]);
    assert!(text(&out).contains("allow-admitted"), "{}", text(&out));

    let out = run(h, &["policy", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(h, &["policy", "init"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "init never overwrites: {}",
        text(&out)
    );
    std::fs::write(
        h.join("policy/site.cedar"),
        "@id(\"no-big-plugins\")\nforbid (principal, action, resource)\nwhen { resource.limits.memory > 100 };\n",
    )
    .unwrap();
    let out = run(h, &["policy", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("site.cedar") && msg.contains("no-big-plugins") && msg.contains("memory"),
        "{msg}"
    );
    // Fail closed: with an invalid policy set, everything is denied.
    let out = run(
        h,
        &[
            "policy",
            "explain",
            "--dev",
            dp,
            "--signed-by",
            "marketplace",
        ],
    );
    assert!(text(&out).contains("policy-check-failed"), "{}", text(&out));
}
