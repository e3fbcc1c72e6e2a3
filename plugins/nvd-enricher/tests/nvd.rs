//! Native tests: the NVD 2.0 parser on recorded responses, the request loop with a fake
//! fetcher, and what lands on the findings.

use nvd_enricher::nvd::{self, Parsed, parse_response};
use nvd_enricher::{
    DEFAULT_BASE_URL, FetchError, Outcome, Reply, Settings, apply, canonical_cve, distinct_cves,
    query_all,
};
use secflow_pdk::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn found(name: &str, id: &str) -> nvd::NvdRecord {
    match parse_response(&fixture(name), id).unwrap() {
        Parsed::Found(r) => *r,
        Parsed::NotFound => panic!("{name}: not found"),
    }
}

fn with_cves(cves: &[&str]) -> Finding {
    Finding {
        cve_ids: cves.iter().map(|c| c.to_string()).collect(),
        ..finding(
            "deps/vulnerable",
            Severity::Medium,
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

fn settings() -> Settings {
    Settings::from_config(&json!({})).unwrap()
}

#[test]
fn parses_log4shell() {
    let r = found("CVE-2021-44228.json", "CVE-2021-44228");
    assert_eq!(r.id, "CVE-2021-44228");
    let cvss = r.cvss.unwrap();
    assert_eq!(cvss.version, "3.1");
    assert_eq!(cvss.vector, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H");
    assert_eq!(cvss.base_score, Some(10.0));
    assert_eq!(cvss.base_severity.as_deref(), Some("CRITICAL"));
    assert_eq!(cvss.source.as_deref(), Some("nvd@nist.gov"));
    assert!(cvss.primary);
    assert_eq!(r.cwe_ids, vec![20, 400, 502, 917]);
    assert_eq!(r.published.as_deref(), Some("2021-12-10T10:15:09.143"));
    assert_eq!(r.last_modified.as_deref(), Some("2025-02-04T15:15:13.773"));
    assert_eq!(r.status.as_deref(), Some("Analyzed"));
    // The English description (longer than 500 characters) is cut with an ellipsis.
    let d = r.description.unwrap();
    assert!(
        d.starts_with("Apache Log4j2 2.0-beta9 through 2.15.0"),
        "{d}"
    );
    assert!(d.ends_with('…'), "{d}");
    assert!(d.chars().count() <= nvd::MAX_DESCRIPTION_CHARS + 1);
    assert_eq!(r.references.len(), 8);
    assert_eq!(
        r.references[0].tags,
        vec!["Release Notes".to_string(), "Vendor Advisory".to_string()]
    );
}

#[test]
fn prefers_the_primary_score_and_falls_back_through_versions() {
    // Citrix Bleed: the CNA's 9.4 (Secondary) comes first, NVD's 7.5 (Primary) wins.
    let r = found("CVE-2023-4966.json", "CVE-2023-4966");
    let cvss = r.cvss.unwrap();
    assert_eq!(cvss.vector, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N");
    assert_eq!(cvss.base_score, Some(7.5));
    assert_eq!(r.cwe_ids, vec![119]);
    // Trailing spaces trimmed; the double space inside is the NVD's own text.
    assert_eq!(
        r.description.as_deref(),
        Some(
            "Sensitive information disclosure in NetScaler ADC and NetScaler Gateway when configured as a Gateway (VPN virtual server, ICA Proxy, CVPN, RDP Proxy) or AAA  virtual server."
        )
    );
    // Struts: only v3.0 (and v2, never used).
    let r = found("CVE-2017-5638.json", "CVE-2017-5638");
    let cvss = r.cvss.unwrap();
    assert_eq!(
        (cvss.version, cvss.vector.as_str()),
        ("3.0", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H")
    );
    assert_eq!(r.cwe_ids, vec![20]);
    // v4.0 is preferred to v3.0, and a Secondary score is used when there is no Primary.
    let r = found("hostile/CVE-2099-23456-v40-only.json", "CVE-2099-23456");
    let cvss = r.cvss.unwrap();
    assert_eq!(cvss.version, "4.0");
    assert_eq!(
        cvss.vector,
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    );
    assert!(!cvss.primary);
    assert_eq!(r.cwe_ids, vec![78]);
}

#[test]
fn records_without_metrics_or_cwes() {
    let r = found("hostile/CVE-2099-12345-no-metrics.json", "CVE-2099-12345");
    assert_eq!(r.cvss, None);
    // NVD-CWE-noinfo, NVD-CWE-Other and "not a cwe" are dropped.
    assert_eq!(r.cwe_ids, vec![79]);
    assert_eq!(r.status.as_deref(), Some("Awaiting Analysis"));
    // English picked although Spanish comes first; newline and escapes neutralised.
    let d = r.description.unwrap();
    assert!(d.starts_with("A synthetic record"), "{d}");
    assert!(!d.chars().any(char::is_control), "{d:?}");
    assert!(r.references.is_empty());
}

#[test]
fn wrong_types_inside_a_record_are_skipped() {
    let r = found("hostile/CVE-2099-34567-wrong-types.json", "CVE-2099-34567");
    assert_eq!(r.description, None);
    assert_eq!(r.published, None);
    assert_eq!(r.last_modified, None);
    assert_eq!(r.status, None);
    // A v3.0 vector filed under cvssMetricV31 is not trusted, nor a numeric vector.
    assert_eq!(r.cvss, None);
    assert!(r.cwe_ids.is_empty());
    assert!(r.references.is_empty());
}

#[test]
fn not_found_and_hostile_envelopes() {
    for name in [
        "hostile/not-found.json",
        "hostile/empty-vulnerabilities.json",
    ] {
        assert_eq!(
            parse_response(&fixture(name), "CVE-2021-44228").unwrap(),
            Parsed::NotFound,
            "{name}"
        );
    }
    let log4shell = fixture("CVE-2021-44228.json");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (fixture("hostile/rate-limited.html"), "not JSON"),
        (log4shell[..log4shell.len() / 2].to_vec(), "not JSON"),
        (Vec::new(), "not JSON"),
        (b"[]".to_vec(), "not a JSON object"),
        (b"null".to_vec(), "not a JSON object"),
        (b"{}".to_vec(), "no `vulnerabilities` array"),
        (
            b"{\"vulnerabilities\":{}}".to_vec(),
            "no `vulnerabilities` array",
        ),
        (
            b"{\"vulnerabilities\":[{}]}".to_vec(),
            "`vulnerabilities[0].cve` is missing",
        ),
        (
            b"{\"vulnerabilities\":[{\"cve\":{\"id\":7}}]}".to_vec(),
            "`vulnerabilities[0].cve.id` is missing",
        ),
        (
            format!("{{\"vulnerabilities\":{}", "[".repeat(10_000)).into_bytes(),
            "not JSON",
        ),
        (vec![0xff, 0xfe, 0x00], "not JSON"),
    ];
    for (body, needle) in cases {
        let err = parse_response(&body, "CVE-2021-44228").unwrap_err();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // A record for another CVE is refused.
    let err = parse_response(&log4shell, "CVE-2021-45046").unwrap_err();
    assert!(err.contains("is for `CVE-2021-44228`"), "{err}");
}

#[test]
fn cwe_numbers() {
    assert_eq!(nvd::cwe_number("CWE-79"), Some(79));
    assert_eq!(nvd::cwe_number(" CWE-1321 "), Some(1321));
    for bad in [
        "NVD-CWE-Other",
        "NVD-CWE-noinfo",
        "CWE-",
        "CWE-0",
        "CWE-7x",
        "cwe-79",
        "CWE-9999999999",
    ] {
        assert_eq!(nvd::cwe_number(bad), None, "{bad}");
    }
    assert_eq!(nvd::truncate("héllo", 3), "hél…");
    assert_eq!(nvd::truncate("hé", 3), "hé");
}

#[test]
fn settings_and_urls() {
    let s = settings();
    assert_eq!(s.base_url, DEFAULT_BASE_URL);
    assert_eq!(s.api_key, None);
    assert_eq!(s.max_requests, 20);
    assert_eq!(s.time_budget, Duration::from_secs(60));
    assert_eq!(
        s.url("CVE-2021-44228"),
        "https://services.nvd.nist.gov/rest/json/cves/2.0?cveId=CVE-2021-44228"
    );
    let s = Settings::from_config(&json!({
        "base-url": "http://127.0.0.1:8080/cves?noRejected", "api-key": " 0a1b2c3d-key ",
        "max-requests": 0, "time-budget-seconds": 5
    }))
    .unwrap();
    assert_eq!(
        s.url("CVE-2021-44228"),
        "http://127.0.0.1:8080/cves?noRejected&cveId=CVE-2021-44228"
    );
    assert_eq!(s.api_key.as_deref(), Some("0a1b2c3d-key"));
    assert_eq!(
        Settings::from_config(&json!({"api-key": ""}))
            .unwrap()
            .api_key,
        None
    );
    for bad in [
        json!({"base-url": "ftp://nvd"}),
        json!({"base-url": "https://"}),
        json!({"base-url": "services.nvd.nist.gov"}),
        json!({"base-url": "https://x/#frag"}),
        json!({"base-url": 3}),
        json!({"api-key": "line\nbreak"}),
        json!({"api-key": 42}),
        json!({"max-requests": -1}),
        json!({"max-requests": 101}),
        json!({"max-requests": 2.5}),
        json!({"time-budget-seconds": 0}),
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
fn cve_ids_are_canonical_and_distinct() {
    assert_eq!(
        canonical_cve(" cve-2021-44228 ").as_deref(),
        Some("CVE-2021-44228")
    );
    for bad in [
        "CVE-2021-442",
        "CVE-2021-44228&x=1",
        "CVE-2021-44228/../",
        "GHSA-jfh8-c2jp-5v3q",
        "",
    ] {
        assert_eq!(canonical_cve(bad), None, "{bad}");
    }
    let findings = vec![
        with_cves(&["CVE-2021-44228", "cve-2023-4966"]),
        with_cves(&["CVE-2023-4966", "junk", "CVE-2017-5638"]),
        with_cves(&[]),
    ];
    assert_eq!(
        distinct_cves(&findings),
        vec!["CVE-2021-44228", "CVE-2023-4966", "CVE-2017-5638"]
    );
}

/// A fetcher serving fixtures by `cveId`, recording the URLs asked for.
fn fake_nvd(
    urls: &RefCell<Vec<String>>,
    answers: HashMap<&'static str, Result<Reply, FetchError>>,
) -> impl FnMut(&str) -> Result<Reply, FetchError> {
    move |url: &str| {
        urls.borrow_mut().push(url.to_string());
        let id = url.rsplit_once("cveId=").unwrap().1;
        answers.get(id).cloned().unwrap_or_else(|| {
            Ok(Reply {
                status: 200,
                body: fixture("hostile/not-found.json"),
                message: None,
            })
        })
    }
}

fn ok(name: &str) -> Result<Reply, FetchError> {
    Ok(Reply {
        status: 200,
        body: fixture(name),
        message: None,
    })
}

#[test]
fn enriches_findings_end_to_end() {
    let mut findings = vec![
        with_cves(&["CVE-2021-44228"]),
        Finding {
            cvss_vector: Some("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N".into()),
            cwe_ids: vec![917, 1],
            ..with_cves(&["cve-2021-44228"])
        },
        with_cves(&["CVE-2023-4966", "CVE-2017-5638"]),
        with_cves(&["CVE-2099-12345"]),
        with_cves(&["CVE-2030-0001"]),
        with_cves(&[]),
    ];
    let urls = RefCell::new(Vec::new());
    let fetch = fake_nvd(
        &urls,
        HashMap::from([
            ("CVE-2021-44228", ok("CVE-2021-44228.json")),
            ("CVE-2023-4966", ok("CVE-2023-4966.json")),
            ("CVE-2017-5638", ok("CVE-2017-5638.json")),
            (
                "CVE-2099-12345",
                ok("hostile/CVE-2099-12345-no-metrics.json"),
            ),
        ]),
    );
    let cves = distinct_cves(&findings);
    let (outcomes, warnings) = query_all(&cves, &settings(), fetch, || false);
    assert_eq!(urls.borrow().len(), 5);
    assert!(warnings.is_empty(), "{warnings:?}");
    apply(&mut findings, &outcomes);

    let f = &findings[0];
    assert_eq!(
        f.cvss_vector.as_deref(),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H")
    );
    assert_eq!(f.cwe_ids, vec![20, 400, 502, 917]);
    assert_eq!(prop(f, "nvd.cve"), Some("CVE-2021-44228"));
    assert_eq!(
        prop(f, "nvd.url"),
        Some("https://nvd.nist.gov/vuln/detail/CVE-2021-44228")
    );
    assert_eq!(prop(f, "nvd.published"), Some("2021-12-10T10:15:09.143"));
    assert_eq!(
        prop(f, "nvd.last-modified"),
        Some("2025-02-04T15:15:13.773")
    );
    assert_eq!(prop(f, "nvd.status"), Some("Analyzed"));
    assert!(
        prop(f, "nvd.description")
            .unwrap()
            .starts_with("Apache Log4j2")
    );
    assert_eq!(prop(f, "nvd.cvss-version"), Some("3.1"));
    assert_eq!(prop(f, "nvd.cvss-score"), Some("10.0"));
    assert_eq!(prop(f, "nvd.cvss-severity"), Some("critical"));
    assert_eq!(prop(f, "nvd.cvss-source"), Some("nvd@nist.gov"));
    let refs: Vec<&str> = prop(f, "nvd.references").unwrap().split(' ').collect();
    assert_eq!(refs.len(), 5);
    assert_eq!(
        refs[0],
        "https://logging.apache.org/log4j/2.x/security.html"
    );
    assert_eq!(prop(f, "nvd.error"), None);

    // An existing vector is kept; CWEs are merged without duplicates.
    let f = &findings[1];
    assert_eq!(
        f.cvss_vector.as_deref(),
        Some("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N")
    );
    assert_eq!(f.cwe_ids, vec![917, 1, 20, 400, 502]);
    assert_eq!(
        prop(f, "nvd.cvss-vector"),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H")
    );

    // Two CVEs: the first gives the properties and vector, both give CWEs.
    let f = &findings[2];
    assert_eq!(prop(f, "nvd.cve"), Some("CVE-2023-4966"));
    assert_eq!(
        f.cvss_vector.as_deref(),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N")
    );
    assert_eq!(f.cwe_ids, vec![119, 20]);
    assert_eq!(
        prop(f, "nvd.references").unwrap().split(' ').next(),
        Some(
            "https://support.citrix.com/article/CTX579459/netscaler-adc-and-netscaler-gateway-security-bulletin-for-cve20234966-and-cve20234967"
        )
    );

    // Known but not analysed: no vector, no CVSS properties.
    let f = &findings[3];
    assert_eq!(f.cvss_vector, None);
    assert_eq!(f.cwe_ids, vec![79]);
    assert_eq!(prop(f, "nvd.status"), Some("Awaiting Analysis"));
    assert_eq!(prop(f, "nvd.cvss-vector"), None);

    // Unknown to the NVD.
    let f = &findings[4];
    assert_eq!(
        prop(f, "nvd.error"),
        Some("CVE-2030-0001: not found in the NVD")
    );
    assert_eq!(prop(f, "nvd.cve"), None);
    assert!(findings[5].properties.is_empty());
}

#[test]
fn errors_are_per_cve_and_rate_limits_stop() {
    let cves: Vec<String> = [
        "CVE-2021-44228",
        "CVE-2023-4966",
        "CVE-2017-5638",
        "CVE-2024-3400",
        "CVE-2024-6387",
        "CVE-2014-0160",
    ]
    .map(String::from)
    .to_vec();
    let urls = RefCell::new(Vec::new());
    let fetch = fake_nvd(
        &urls,
        HashMap::from([
            (
                "CVE-2021-44228",
                Ok(Reply {
                    status: 503,
                    body: b"Service Unavailable".to_vec(),
                    message: None,
                }),
            ),
            (
                "CVE-2023-4966",
                Err(FetchError::Transport("ConnectionRefused".into())),
            ),
            (
                "CVE-2017-5638",
                Ok(Reply {
                    status: 200,
                    body: fixture("hostile/rate-limited.html"),
                    message: None,
                }),
            ),
            ("CVE-2024-3400", ok("CVE-2021-44228.json")),
            (
                "CVE-2024-6387",
                Ok(Reply {
                    status: 403,
                    body: fixture("hostile/rate-limited.html"),
                    message: Some("Request forbidden by administrative rules.".into()),
                }),
            ),
        ]),
    );
    let (outcomes, warnings) = query_all(&cves, &settings(), fetch, || false);
    // The sixth CVE is never asked for.
    assert_eq!(urls.borrow().len(), 5);
    let err = |id: &str| match &outcomes[id] {
        Outcome::Failed(e) | Outcome::NotQueried(e) => e.clone(),
        other => panic!("{id}: {other:?}"),
    };
    assert_eq!(err("CVE-2021-44228"), "HTTP 503");
    assert!(err("CVE-2023-4966").contains("ConnectionRefused"));
    assert!(err("CVE-2017-5638").starts_with("unusable NVD response: not JSON"));
    assert!(err("CVE-2024-3400").contains("is for `CVE-2021-44228`"));
    let e = err("CVE-2024-6387");
    assert!(
        e.starts_with("HTTP 403 (Request forbidden by administrative rules.)"),
        "{e}"
    );
    assert!(matches!(outcomes["CVE-2014-0160"], Outcome::NotQueried(_)));
    assert!(err("CVE-2014-0160").contains("HTTP 403"));
    assert_eq!(warnings.len(), 6, "{warnings:?}");
    assert!(warnings[5].starts_with("1 CVE(s) not queried"));

    // Findings carry their CVE's error; a finding with a good and a bad CVE gets both.
    let mut findings = vec![
        with_cves(&["CVE-2021-44228"]),
        with_cves(&["CVE-2014-0160", "CVE-2023-4966"]),
    ];
    apply(&mut findings, &outcomes);
    assert_eq!(
        prop(&findings[0], "nvd.error"),
        Some("CVE-2021-44228: HTTP 503")
    );
    let e = prop(&findings[1], "nvd.error").unwrap();
    assert!(
        e.starts_with("CVE-2014-0160: not queried")
            && e.contains("; CVE-2023-4966: request failed"),
        "{e}"
    );
}

#[test]
fn limits_stop_requests() {
    let cves: Vec<String> = (1..=6).map(|i| format!("CVE-2024-{i:04}")).collect();
    let transport =
        |_: &str| -> Result<Reply, FetchError> { Err(FetchError::Transport("DnsTimeout".into())) };
    // Three transport failures in a row.
    let (outcomes, _) = query_all(&cves, &settings(), transport, || false);
    let failed = outcomes
        .values()
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count();
    assert_eq!(failed, 3);

    // A host denial stops at once.
    let calls = RefCell::new(0);
    let denied = |_: &str| {
        *calls.borrow_mut() += 1;
        Err(FetchError::Denied("destination address is internal".into()))
    };
    let (outcomes, _) = query_all(&cves, &settings(), denied, || false);
    assert_eq!(*calls.borrow(), 1);
    assert!(
        matches!(&outcomes["CVE-2024-0002"], Outcome::NotQueried(e) if e.contains("host denied"))
    );

    // max-requests.
    let s = Settings::from_config(&json!({"max-requests": 2})).unwrap();
    let urls = RefCell::new(Vec::new());
    let (outcomes, warnings) = query_all(&cves, &s, fake_nvd(&urls, HashMap::new()), || false);
    assert_eq!(urls.borrow().len(), 2);
    assert!(
        matches!(&outcomes["CVE-2024-0003"], Outcome::NotQueried(e) if e.contains("max-requests (2)"))
    );
    assert_eq!(
        warnings,
        vec!["4 CVE(s) not queried: max-requests (2) reached"]
    );
    let s = Settings::from_config(&json!({"max-requests": 0})).unwrap();
    let urls = RefCell::new(Vec::new());
    query_all(&cves, &s, fake_nvd(&urls, HashMap::new()), || false);
    assert!(urls.borrow().is_empty());

    // The time budget.
    let ticks = RefCell::new(0);
    let urls = RefCell::new(Vec::new());
    let (outcomes, _) = query_all(&cves, &settings(), fake_nvd(&urls, HashMap::new()), || {
        *ticks.borrow_mut() += 1;
        *ticks.borrow() > 3
    });
    assert_eq!(urls.borrow().len(), 3);
    assert!(
        matches!(&outcomes["CVE-2024-0006"], Outcome::NotQueried(e) if e.contains("time-budget-seconds (60)"))
    );
}
