//! `secflow policy` as users run it: the shipped defaults check clean, explain names the
//! deciding policies, and a broken site policy is an error naming file, line and attribute.

mod common;

use common::{all_text as text, run};
use std::path::Path;
use std::process::Output;

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
    let decisions = |out: &Output| -> Vec<serde_json::Value> {
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)));
        v["decisions"].as_array().unwrap().clone()
    };
    let unsigned = decisions(&out);
    assert_eq!(unsigned.len(), 4, "install, upgrade, enable, run");
    for d in &unsigned {
        assert_eq!(d["decision"]["allowed"], false);
        assert_eq!(d["decision"]["policies"][0], "signature-required");
    }
    let out = run(
        h,
        &[
            "policy",
            "explain",
            "--dev",
            dp,
            "--signed-by",
            "publisher",
            "--json",
        ],
    );
    let signed = decisions(&out);
    assert_eq!(signed.len(), 4);
    let install = signed.iter().find(|d| d["action"] == "install").unwrap();
    assert_eq!(install["decision"]["allowed"], true, "{install}");
    assert_eq!(
        install["decision"]["policies"],
        serde_json::json!(["allow-admitted"])
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
    // Fail closed: with an invalid policy set, everything is denied, by that reason.
    let out = run(
        h,
        &[
            "policy",
            "explain",
            "--dev",
            dp,
            "--signed-by",
            "marketplace",
            "--json",
        ],
    );
    let closed = decisions(&out);
    assert_eq!(closed.len(), 4, "{}", text(&out));
    for d in &closed {
        assert_eq!(d["decision"]["allowed"], false, "{d}");
        assert_eq!(
            d["decision"]["policies"],
            serde_json::json!(["policy-check-failed"]),
            "{d}"
        );
    }
}
