//! The enrichment chain in the pipeline with the official components: NVD (against a real
//! HTTP server on 127.0.0.1 serving recorded NVD API 2.0 responses), CWE, CVSS, KEV/EPSS (from
//! granted feed files) and the summary analytics.

use secflow_runtime::{Grants, Runtime, RuntimeConfig};
use secflow_scan::{NoProgress, ScanOptions, ScanPlugin, ScanReport, Severity};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins")
}

/// A real HTTP/1.1 server on loopback that answers `GET ...?cveId=ID` with the recorded NVD
/// response for ID (the NVD's own "not found" document for unknown ids). Returns its port and
/// the request lines it saw; it stops when the test process ends.
fn nvd_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            log.lock().unwrap().push(request_line.trim().to_string());
            let id = request_line
                .split("cveId=")
                .nth(1)
                .and_then(|r| r.split([' ', '&']).next())
                .unwrap_or("");
            let fixtures = plugins_dir().join("nvd-enricher/tests/fixtures");
            let body = std::fs::read(fixtures.join(format!("{id}.json"))).unwrap_or_else(|_| {
                std::fs::read(fixtures.join("hostile/not-found.json")).unwrap()
            });
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (port, seen)
}

fn load(
    rt: &Runtime,
    manifest: &str,
    wasm: &[u8],
    mounts: &[(String, PathBuf)],
    config: serde_json::Value,
) -> ScanPlugin {
    let manifest = secflow_manifest::Manifest::parse(
        manifest.as_bytes(),
        secflow_manifest::Format::Toml,
        "test",
    )
    .unwrap();
    let grants = Grants::all_declared(&manifest, mounts).unwrap();
    ScanPlugin {
        plugin: Arc::new(rt.load(manifest, wasm, grants).unwrap()),
        config,
        origin: "bundled".into(),
    }
}

fn bundled(name: &str) -> &'static secflow_plugin_artifacts::Bundled {
    secflow_plugin_artifacts::BUNDLED
        .iter()
        .find(|b| b.name == name)
        .unwrap()
}

fn test_detector(rt: &Runtime) -> ScanPlugin {
    let a = secflow_plugin_artifacts::TEST_DETECTOR;
    let manifest = std::fs::read_to_string(Path::new(a.dir).join("plugin.toml")).unwrap();
    load(rt, &manifest, &a.bytes(), &[], serde_json::json!({}))
}

/// The NVD enricher's manifest with its network grant moved to the test server: the test
/// grants that loopback address explicitly, as a user would have to.
fn nvd_on_loopback(rt: &Runtime, port: u16) -> ScanPlugin {
    let b = bundled("nvd-enricher");
    let start = b.manifest.find("[[capabilities.network]]").unwrap();
    let end = b.manifest[start..]
        .find("\n\n")
        .map_or(b.manifest.len(), |i| start + i);
    let manifest = format!(
        "{}[[capabilities.network]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\nallow-private = true\nreason = \"test server\"\n{}",
        &b.manifest[..start],
        &b.manifest[end..]
    );
    load(
        rt,
        &manifest,
        b.component,
        &[],
        serde_json::json!({ "base-url": format!("http://127.0.0.1:{port}/rest/json/cves/2.0") }),
    )
}

fn run(rt: &Runtime, root: &Path, plugins: &[ScanPlugin]) -> ScanReport {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(secflow_scan::scan(
            rt,
            root,
            plugins,
            &ScanOptions::default(),
            Arc::new(NoProgress),
        ))
        .unwrap()
}

#[test]
fn nvd_cwe_cvss_kev_chain_enriches_findings() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let (port, seen) = nvd_server();
    let feeds = plugins_dir().join("kev-epss-enricher/tests/fixtures");
    let plain = |name: &str, mounts: &[(String, PathBuf)]| {
        let b = bundled(name);
        load(&rt, b.manifest, b.component, mounts, serde_json::json!({}))
    };
    let plugins = vec![
        test_detector(&rt),
        nvd_on_loopback(&rt, port),
        plain("cwe-enricher", &[]),
        plain("cvss-enricher", &[]),
        plain("kev-epss-enricher", &[("/feeds".into(), feeds)]),
        plain("summary-analytics", &[]),
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pom.xml"),
        "<dep>log4j-core 2.14.1</dep> TEST-FINDING:low TEST-CVE:CVE-2021-44228\nTEST-FINDING:low TEST-CVE:CVE-2099-0001\n",
    )
    .unwrap();
    let report = run(&rt, dir.path(), &plugins);
    assert!(!report.partial, "{:?}", report.errors);

    let log4shell = report
        .findings
        .iter()
        .find(|f| f.cve_ids == ["CVE-2021-44228"])
        .unwrap();
    // NVD supplied the vector and CWEs, CVSS scored it, KEV marked it.
    assert_eq!(
        log4shell.cvss_vector.as_deref(),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H")
    );
    let p = &log4shell.properties;
    assert_eq!(p["cvss.score"], "10.0");
    assert_eq!(p["cvss.version"], "3.1");
    assert_eq!(log4shell.severity, Severity::Critical);
    assert!(log4shell.cwe_ids.contains(&502) && log4shell.cwe_ids.contains(&79));
    assert!(p["cwe.502.name"].contains("Deserialization"), "{p:?}");
    assert_eq!(p["kev.known-exploited"], "true");
    assert!(p["nvd.url"].ends_with("CVE-2021-44228"));
    assert!(log4shell.tags.iter().any(|t| t == "known-exploited"));
    // The detector, not an enricher, keeps the credit and the place.
    assert_eq!(log4shell.plugin, "test-detector");
    assert_eq!(log4shell.path(), "pom.xml");

    let unknown = report
        .findings
        .iter()
        .find(|f| f.cve_ids == ["CVE-2099-0001"])
        .unwrap();
    assert!(unknown.properties.contains_key("nvd.error"), "{unknown:?}");
    assert_eq!(unknown.severity, Severity::Low);

    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("GET /rest/json/cves/2.0?cveId=CVE-"))
    );

    let summary = &report.analytics[0].summary_markdown;
    assert!(summary.contains("CWE-502"), "{summary}");
    assert_eq!(report.plugins.iter().map(|p| p.errors).sum::<u64>(), 0);
}

#[test]
fn an_enricher_reaching_an_ungranted_host_is_stopped_and_the_findings_pass_through() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let (port, seen) = nvd_server();
    // The bundled grant (services.nvd.nist.gov) with a base URL on loopback: refused.
    let b = bundled("nvd-enricher");
    let nvd = load(
        &rt,
        b.manifest,
        b.component,
        &[],
        serde_json::json!({ "base-url": format!("http://127.0.0.1:{port}/rest/json/cves/2.0") }),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.txt"),
        "TEST-FINDING:low TEST-CVE:CVE-2021-44228\n",
    )
    .unwrap();
    let report = run(&rt, dir.path(), &[test_detector(&rt), nvd]);
    assert!(report.partial);
    assert_eq!(report.errors[0].plugin, "nvd-enricher");
    assert_eq!(report.errors[0].kind, "capability-denied");
    assert!(
        report.errors.iter().all(|e| e.plugin == "nvd-enricher"
            && e.violation
            && e.message.contains(&format!(
                "request to http://127.0.0.1:{port} is not covered by any network grant"
            ))),
        "{:?}",
        report.errors
    );
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].cvss_vector, None);
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request reached the server"
    );
}
