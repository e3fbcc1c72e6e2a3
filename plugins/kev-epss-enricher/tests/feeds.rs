//! Native tests of the parsers and of the enrichment, on fixtures in the real formats.

use kev_epss_enricher::feeds::{self, Feed, cve_key, cve_string, parse_epss, parse_kev};
use kev_epss_enricher::{Feeds, Settings, apply, load_feeds};
use secflow_pdk::prelude::*;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture_feeds() -> Feeds {
    let kev = parse_kev(&std::fs::read(fixture("known_exploited_vulnerabilities.json")).unwrap())
        .unwrap();
    let epss = parse_epss(&std::fs::read(fixture("epss_scores-current.csv")).unwrap()).unwrap();
    Feeds {
        kev: Some(kev),
        epss: Some(epss),
    }
}

fn with_cves(severity: Severity, cves: &[&str]) -> Finding {
    Finding {
        cve_ids: cves.iter().map(|c| c.to_string()).collect(),
        ..finding(
            "deps/vulnerable",
            severity,
            "Vulnerable dependency",
            "msg".into(),
        )
    }
}

fn prop<'a>(f: &'a Finding, key: &str) -> Option<&'a str> {
    f.properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn sev(f: &Finding) -> &'static str {
    kev_epss_enricher::severity_name(f.severity)
}

#[test]
fn cve_keys_are_canonical() {
    let k = cve_key("CVE-2021-44228").unwrap();
    assert_eq!(cve_string(k), "CVE-2021-44228");
    assert_eq!(cve_key(" cve-2021-44228 "), Some(k));
    assert_eq!(
        cve_string(cve_key("CVE-1999-0001").unwrap()),
        "CVE-1999-0001"
    );
    assert_eq!(
        cve_string(cve_key("CVE-2019-1010022").unwrap()),
        "CVE-2019-1010022"
    );
    for bad in [
        "",
        "CVE",
        "CVE-2021",
        "CVE-2021-123",
        "CVE-21-44228",
        "CVE-2021-044228",
        "CVE-2021-44228x",
        "CVE-2021-4422８",
        "GHSA-jfh8-c2jp-5v3q",
        "CVE-2021-9999999999999",
        "ÇVE-2021-44228",
    ] {
        assert_eq!(cve_key(bad), None, "{bad}");
    }
}

#[test]
fn parses_the_kev_fixture() {
    let kev = parse_kev(&std::fs::read(fixture("known_exploited_vulnerabilities.json")).unwrap())
        .unwrap();
    assert_eq!(kev.catalog_version.as_deref(), Some("2025.03.20"));
    assert_eq!(kev.entries.len(), 5);
    let log4shell = &kev.entries[&cve_key("CVE-2021-44228").unwrap()];
    assert_eq!(log4shell.cve, "CVE-2021-44228");
    assert_eq!(log4shell.vendor_project, "Apache");
    assert_eq!(log4shell.product, "Log4j2");
    assert_eq!(
        log4shell.vulnerability_name,
        "Apache Log4j2 Remote Code Execution Vulnerability"
    );
    assert_eq!(log4shell.date_added, "2021-12-10");
    assert_eq!(log4shell.due_date, "2021-12-24");
    assert_eq!(log4shell.ransomware, "Known");
    assert!(
        log4shell
            .required_action
            .contains("https://www.cisa.gov/uscert/ed-22-02")
    );
    assert_eq!(
        kev.entries[&cve_key("CVE-2014-0160").unwrap()].ransomware,
        "Unknown"
    );
}

#[test]
fn parses_the_epss_fixture_as_given() {
    let epss = parse_epss(&std::fs::read(fixture("epss_scores-current.csv")).unwrap()).unwrap();
    assert_eq!(epss.model_version.as_deref(), Some("v2025.03.14"));
    assert_eq!(epss.score_date.as_deref(), Some("2025-03-20T12:55:00Z"));
    assert_eq!(epss.entries.len(), 11);
    let e = epss.entries[&cve_key("CVE-2021-44228").unwrap()];
    assert_eq!(e.score.value, 0.94358);
    assert_eq!(e.score.text(), "0.94358");
    assert_eq!(e.percentile.text(), "0.99951");
    let e = epss.entries[&cve_key("CVE-2019-1010022").unwrap()];
    assert_eq!(
        (e.score.text(), e.percentile.text()),
        ("0.00171".into(), "0.38710".into())
    );
}

#[test]
fn epss_variants_that_are_accepted() {
    // No comment line, CRLF, a BOM, upper-case header, blank lines, header only.
    let e = parse_epss(b"\xef\xbb\xbfCVE,EPSS,Percentile\r\nCVE-2021-44228,0.9,1\r\n\r\n").unwrap();
    assert_eq!(e.model_version, None);
    let v = e.entries[&cve_key("CVE-2021-44228").unwrap()];
    assert_eq!(
        (v.score.text(), v.percentile.text()),
        ("0.9".into(), "1".into())
    );
    assert!(
        parse_epss(b"cve,epss,percentile\n")
            .unwrap()
            .entries
            .is_empty()
    );
    let e = parse_epss(b"cve,epss,percentile\nCVE-2021-44228,4.3e-04,0.5\n").unwrap();
    assert_eq!(
        e.entries[&cve_key("CVE-2021-44228").unwrap()].score.text(),
        "0.00043"
    );
}

#[test]
fn hostile_kev_inputs_are_refused_with_the_place() {
    let good = std::fs::read_to_string(fixture("known_exploited_vulnerabilities.json")).unwrap();
    // Truncated in the middle.
    let err = parse_kev(&good.as_bytes()[..good.len() / 2]).unwrap_err();
    assert!(err.contains("line") && err.contains("column"), "{err}");
    // Not JSON at all, empty, wrong top-level type, missing array.
    for (input, needle) in [
        (&b"<html>502 Bad Gateway</html>"[..], "line 1"),
        (b"", "EOF"),
        (b"[]", "found an array at line 1"),
        (
            b"\n\n [{\"cveID\":\"CVE-2021-44228\"}]",
            "found an array at line 3",
        ),
        (b"\"vulnerabilities\"", "invalid type: string"),
        (b"{\"title\":\"x\"}", "vulnerabilities"),
        (b"{\"vulnerabilities\":{}}", "array of KEV entries"),
    ] {
        let err = parse_kev(input).unwrap_err();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // An entry without cveID, with a mistyped field, with a bad id, with no dateAdded.
    let err = parse_kev(br#"{"vulnerabilities":[{"dateAdded":"2021-12-10"}]}"#).unwrap_err();
    assert!(err.contains("missing field `cveID`"), "{err}");
    let err = parse_kev(br#"{"vulnerabilities":[{"cveID":42,"dateAdded":"x"}]}"#).unwrap_err();
    assert!(err.contains("invalid type: integer"), "{err}");
    let err = parse_kev(
        br#"{"vulnerabilities":[{"cveID":"CVE-2021-44228","dateAdded":"2021-12-10"},
            {"cveID":"CVE-XXXX-1","dateAdded":"2021-12-10"}]}"#,
    )
    .unwrap_err();
    assert!(
        err.contains("vulnerabilities[1].cveID") && err.contains("CVE-XXXX-1"),
        "{err}"
    );
    let err = parse_kev(br#"{"vulnerabilities":[{"cveID":"CVE-2021-44228"}]}"#).unwrap_err();
    assert!(err.contains("missing field `dateAdded`"), "{err}");
    // Deep nesting stops at serde_json's recursion limit instead of overflowing the stack.
    let deep = format!("{{\"vulnerabilities\":{}", "[".repeat(100_000));
    assert!(parse_kev(deep.as_bytes()).is_err());
    // A gzip file is named as such.
    let err = parse_kev(&[0x1f, 0x8b, 8, 0, 0, 0]).unwrap_err();
    assert!(err.contains("gzip"), "{err}");
    // null optional fields are accepted; unknown fields are ignored.
    let kev = parse_kev(
        br#"{"vulnerabilities":[{"cveID":"CVE-2021-44228","dateAdded":"2021-12-10",
            "dueDate":null,"cwes":["CWE-20"],"extra":{"a":[1,2]}}]}"#,
    )
    .unwrap();
    assert_eq!(kev.entries.len(), 1);
}

#[test]
fn hostile_epss_inputs_are_refused_with_the_line_and_field() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "missing the header"),
        (b"#model_version:v1,score_date:x\n", "missing the header"),
        (
            b"CVE-2021-44228,0.9,0.9\n",
            "line 1: expected the header `cve,epss,percentile`",
        ),
        (
            b"#model_version:v1\ncve,epss\nCVE-2021-44228,0.9\n",
            "line 2: expected the header",
        ),
        (
            b"cve,epss,percentile\nCVE-2021-44228,0.9x,0.99\n",
            "line 2: field `epss`: `0.9x`",
        ),
        (
            b"cve,epss,percentile\nCVE-2021-44228,0.9,NaN\n",
            "line 2: field `percentile`",
        ),
        (
            b"cve,epss,percentile\nCVE-2021-44228,inf,0.5\n",
            "field `epss`",
        ),
        (
            b"cve,epss,percentile\nCVE-2021-44228,1.5,0.5\n",
            "field `epss`",
        ),
        (
            b"cve,epss,percentile\nCVE-2021-44228,-0.1,0.5\n",
            "field `epss`",
        ),
        (
            b"cve,epss,percentile\nCVE-2021-44228,,0.5\n",
            "field `epss`",
        ),
        (
            b"cve,epss,percentile\nCVE-2021-44228,0.1,0.5\nCVE-2021-44229,0.1\n",
            "line 3: expected 3 fields",
        ),
        (
            b"cve,epss,percentile\nCVE-2021-44228,0.1,0.5,extra\n",
            "line 2: expected 3 fields",
        ),
        (
            b"cve,epss,percentile\nLog4Shell,0.1,0.5\n",
            "line 2: field `cve`: `Log4Shell`",
        ),
        (
            b"cve,epss,percentile\nCVE-2021-44228,0.1,\xff\n",
            "line 2: is not UTF-8",
        ),
        (&[0x1f, 0x8b, 8, 0], "gzip"),
    ];
    for (input, needle) in cases {
        let err = parse_epss(input).unwrap_err();
        assert!(
            err.contains(needle),
            "{:?}: expected {needle:?} in {err:?}",
            String::from_utf8_lossy(input)
        );
    }
    // A huge line is refused by its length, before anything is split.
    let mut huge = b"cve,epss,percentile\nCVE-2021-44228,0.1,0.5\n".to_vec();
    huge.extend(std::iter::repeat_n(b'9', 5 << 20));
    let err = parse_epss(&huge).unwrap_err();
    assert!(err.contains("line 3: is longer than 1024 bytes"), "{err}");
    // Many empty lines are fine and cheap.
    let mut blank = b"cve,epss,percentile\n".to_vec();
    blank.extend(std::iter::repeat_n(b'\n', 1 << 20));
    assert!(parse_epss(&blank).unwrap().entries.is_empty());
}

#[test]
fn reading_is_bounded_and_missing_files_are_reported() {
    let dir = std::env::temp_dir().join(format!("kev-epss-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.csv");
    std::fs::write(&big, vec![b'x'; 4096]).unwrap();
    let err = feeds::read_feed(&big, 1024).unwrap_err();
    assert!(err.contains("over the"), "{err}");
    match feeds::read_feed(&big, 4096).unwrap() {
        Feed::Data(d) => assert_eq!(d.len(), 4096),
        Feed::Missing(why) => panic!("{why}"),
    }
    assert!(matches!(
        feeds::read_feed(&dir.join("absent.csv"), 1024).unwrap(),
        Feed::Missing(_)
    ));
    assert!(feeds::read_feed(&dir, 1024).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn settings_defaults_names_and_refusals() {
    let s = Settings::from_config(&json!({})).unwrap();
    assert_eq!(
        s.kev_file,
        Path::new("/feeds/known_exploited_vulnerabilities.json")
    );
    assert_eq!(s.epss_file, Path::new("/feeds/epss_scores-current.csv"));
    assert_eq!(s.epss_threshold, 0.5);
    let s = Settings::from_config(&json!({
        "kev-file": "kev/2025-03-20.json", "epss-file": "/data/epss.csv", "epss-threshold": 0.1
    }))
    .unwrap();
    assert_eq!(s.kev_file, Path::new("/feeds/kev/2025-03-20.json"));
    assert_eq!(s.epss_file, Path::new("/data/epss.csv"));
    assert_eq!(s.epss_threshold, 0.1);
    for bad in [
        json!({"kev-file": "../etc/passwd"}),
        json!({"epss-file": "/feeds/../x"}),
        json!({"kev-file": ""}),
        json!({"kev-file": 3}),
        json!({"epss-threshold": 1.5}),
        json!({"epss-threshold": "high"}),
    ] {
        assert!(
            matches!(
                Settings::from_config(&bad),
                Err(PluginError::InvalidConfig(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn load_feeds_reads_files_and_warns_about_missing_ones() {
    let settings = Settings {
        kev_file: fixture("known_exploited_vulnerabilities.json"),
        epss_file: fixture("no-such-epss.csv"),
        epss_threshold: 0.5,
    };
    let (feeds, warnings) = load_feeds(&settings).unwrap();
    assert_eq!(feeds.kev.unwrap().entries.len(), 5);
    assert!(feeds.epss.is_none());
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("EPSS") && warnings[0].contains("no-such-epss.csv"),
        "{warnings:?}"
    );

    // A malformed file is invalid input naming the file and the line.
    let settings = Settings {
        kev_file: fixture("epss_scores-current.csv"),
        epss_file: fixture("known_exploited_vulnerabilities.json"),
        epss_threshold: 0.5,
    };
    match load_feeds(&settings) {
        Err(PluginError::InvalidInput(msg)) => {
            assert!(
                msg.contains("KEV file") && msg.contains("epss_scores-current.csv"),
                "{msg}"
            );
            assert!(msg.contains("line 1"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn kev_marks_and_raises_severity() {
    let feeds = fixture_feeds();
    let mut findings = vec![
        with_cves(Severity::Medium, &["cve-2021-44228"]),
        with_cves(Severity::Critical, &["CVE-2021-44228"]),
        with_cves(Severity::High, &["CVE-2014-0160"]),
        with_cves(Severity::Info, &["CVE-2023-4966"]),
        with_cves(Severity::Low, &["CVE-2024-6387"]),
        with_cves(Severity::Low, &[]),
    ];
    apply(&mut findings, &feeds, 0.5);

    let f = &findings[0];
    assert_eq!(sev(f), "high");
    assert_eq!(prop(f, "kev.known-exploited"), Some("true"));
    assert_eq!(prop(f, "kev.cve"), Some("CVE-2021-44228"));
    assert_eq!(prop(f, "kev.date-added"), Some("2021-12-10"));
    assert_eq!(prop(f, "kev.due-date"), Some("2021-12-24"));
    assert_eq!(prop(f, "kev.ransomware"), Some("Known"));
    assert!(
        prop(f, "kev.required-action")
            .unwrap()
            .starts_with("For all affected")
    );
    assert_eq!(
        prop(f, "kev.vulnerability-name"),
        Some("Apache Log4j2 Remote Code Execution Vulnerability")
    );
    assert_eq!(prop(f, "kev.vendor-project"), Some("Apache"));
    assert_eq!(prop(f, "kev.product"), Some("Log4j2"));
    assert_eq!(prop(f, "kev.original-severity"), Some("medium"));
    assert!(f.tags.contains(&"known-exploited".to_string()));
    // EPSS 0.94358 is over the threshold too, but high is already at least medium.
    assert!(f.tags.contains(&"likely-exploited".to_string()));
    assert_eq!(prop(f, "epss.original-severity"), None);

    // Critical stays, and nothing is recorded as changed.
    assert_eq!(sev(&findings[1]), "critical");
    assert_eq!(prop(&findings[1], "kev.original-severity"), None);
    // High goes one step up.
    assert_eq!(sev(&findings[2]), "critical");
    assert_eq!(prop(&findings[2], "kev.original-severity"), Some("high"));
    // Info goes to at least high.
    assert_eq!(sev(&findings[3]), "high");
    assert_eq!(prop(&findings[3], "kev.original-severity"), Some("info"));
    assert_eq!(prop(&findings[3], "kev.ransomware"), Some("Known"));
    // Not in KEV (this fixture), EPSS below the threshold: scores only.
    let f = &findings[4];
    assert_eq!(sev(f), "low");
    assert_eq!(prop(f, "kev.known-exploited"), None);
    assert_eq!(prop(f, "epss.score"), Some("0.42611"));
    assert_eq!(prop(f, "epss.percentile"), Some("0.97260"));
    assert_eq!(prop(f, "epss.cve"), Some("CVE-2024-6387"));
    assert_eq!(prop(f, "epss.score-date"), Some("2025-03-20T12:55:00Z"));
    assert!(f.tags.is_empty());
    // No CVEs: untouched.
    assert!(findings[5].properties.is_empty() && findings[5].tags.is_empty());
}

#[test]
fn epss_takes_the_highest_score_and_applies_the_threshold() {
    let feeds = fixture_feeds();
    let mut findings = vec![
        // Not in this KEV fixture: EPSS alone.
        with_cves(
            Severity::Low,
            &[
                "CVE-2022-3602",
                "CVE-2023-44487",
                "CVE-2024-6387",
                "CVE-2030-0001",
            ],
        ),
        with_cves(Severity::Info, &["CVE-2024-6387"]),
        with_cves(Severity::Info, &["CVE-2030-0001", "not-a-cve"]),
    ];
    apply(&mut findings, &feeds, 0.5);
    let f = &findings[0];
    assert_eq!(prop(f, "epss.cve"), Some("CVE-2023-44487"));
    assert_eq!(prop(f, "epss.score"), Some("0.80234"));
    assert_eq!(prop(f, "epss.percentile"), Some("0.99064"));
    assert_eq!(sev(f), "medium");
    assert_eq!(prop(f, "epss.original-severity"), Some("low"));
    assert_eq!(f.tags, vec!["likely-exploited".to_string()]);
    assert_eq!(sev(&findings[1]), "info");
    assert!(findings[2].properties.is_empty());

    // A lower threshold is reached by 0.42611.
    let mut findings = vec![with_cves(Severity::Info, &["CVE-2024-6387"])];
    apply(&mut findings, &feeds, 0.4);
    assert_eq!(sev(&findings[0]), "medium");

    // Running twice does not duplicate tags or properties.
    let mut findings = vec![with_cves(Severity::Low, &["CVE-2021-44228"])];
    apply(&mut findings, &feeds, 0.5);
    let once = findings[0].properties.len();
    apply(&mut findings, &feeds, 0.5);
    assert_eq!(findings[0].properties.len(), once);
    assert_eq!(findings[0].tags.len(), 2);
    assert_eq!(sev(&findings[0]), "high");
    assert_eq!(prop(&findings[0], "kev.original-severity"), Some("low"));
}

#[test]
fn either_feed_alone_works() {
    let Feeds { kev, epss } = fixture_feeds();
    let mut f = vec![with_cves(Severity::Low, &["CVE-2021-44228"])];
    apply(&mut f, &Feeds { kev: None, epss }, 0.5);
    assert_eq!(prop(&f[0], "kev.known-exploited"), None);
    assert_eq!(prop(&f[0], "epss.score"), Some("0.94358"));
    let mut f = vec![with_cves(Severity::Low, &["CVE-2021-44228"])];
    apply(&mut f, &Feeds { kev, epss: None }, 0.5);
    assert_eq!(prop(&f[0], "kev.known-exploited"), Some("true"));
    assert_eq!(prop(&f[0], "epss.score"), None);
}
