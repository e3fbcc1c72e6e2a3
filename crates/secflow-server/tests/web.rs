//! The marketplace's web pages in headless Chromium (Debian `chromium`, installed by
//! `scripts/chromium.sh`, path in `SECFLOW_CHROMIUM`): they load with no console error
//! (no CSP violation either), show what matters (capabilities with reasons, the vetting
//! report), carry a strict CSP and no script, and a 1280 px screenshot is a real page, not
//! an empty or broken one. In CI the test fails without Chromium; elsewhere it says so.

mod common;

use common::Server;
use std::path::Path;

fn chromium() -> Option<String> {
    match std::env::var("SECFLOW_CHROMIUM") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "SECFLOW_CHROMIUM is not set; scripts/test.sh installs chromium"
            );
            eprintln!("skipped: set SECFLOW_CHROMIUM (bash scripts/chromium.sh)");
            None
        }
    }
}

const MANIFEST: &str = "id = \"data-processor\"\nversion = \"1.0.0\"\nkind = \"action\"\nname = \"Data processor\"\ndescription = \"Transforms, filters, aggregates and normalizes lists of numbers.\"\ntags = [\"numbers\"]\ncomponent = \"plugin.wasm\"\n\n[[capabilities.network]]\nscheme = \"https\"\nhost = \"api.example.com\"\nport = 443\nreason = \"fetches exchange rates <b>to normalize</b> amounts\"\n";

/// Runs headless Chromium with `args` on `url`: (stdout, stderr).
async fn run(chromium: &str, profile: &Path, args: &[&str], url: &str) -> (String, String) {
    let output = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "chromium failed: {output:?}");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Console errors and CSP refusals in Chromium's log.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Refused to")
                || l.contains("Uncaught")
                || l.contains("Failed to load resource")
        })
        .collect()
}

/// Share of pixels that differ from the top-left (background) colour, and the width.
fn painted(png_path: &Path) -> (f64, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let background = pixels[(info.width as usize) * 200 + 10];
    let differ = pixels.iter().filter(|p| **p != background).count();
    (differ as f64 / pixels.len() as f64, info.width)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketplace_pages_load_clean_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let server = Server::start(secflow_server::ServerConfig {
        marketplace: true,
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let admin = server.token("admin").await;
    let reviewer = server.token("reviewer").await;
    let (publisher, _keys_dir, keys) = common::market_publisher(&server, &admin).await;
    let plugin = tempfile::tempdir().unwrap();
    std::fs::write(plugin.path().join("plugin.toml"), MANIFEST).unwrap();
    std::fs::copy(
        secflow_plugin_artifacts::DATA_PROCESSOR.component,
        plugin.path().join("plugin.wasm"),
    )
    .unwrap();
    let package = secflow_trust::add_signature(
        &secflow_package::pack_dir(plugin.path()).unwrap(),
        &keys.signing_key("acme").unwrap(),
        secflow_trust::now(),
        None,
        &Default::default(),
    )
    .unwrap();
    let r = http
        .post(url("/v1/market/packages"))
        .bearer_auth(&publisher)
        .header("content-type", "application/octet-stream")
        .body(package)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(url(
            "/v1/market/plugins/data-processor/versions/1.0.0/review",
        ))
        .bearer_auth(&reviewer)
        .json(&serde_json::json!({"decision": "approve", "reason": "rates API documented"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The headers: a strict CSP, and no script anywhere in the page.
    let r = http
        .get(url("/market/plugins/data-processor"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("script-src"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    // The author's reason is text, not markup.
    assert!(html.contains("&lt;b&gt;to normalize&lt;/b&gt;"), "{html}");

    let profile = tempfile::tempdir().unwrap();
    let shots = tempfile::tempdir().unwrap();
    for (path, expect) in [
        (
            "/market/plugins/data-processor",
            &[
                "What it may do",
                "net:https://api.example.com:443",
                "fetches exchange rates",
                "Vetting report",
                "capability-diff",
                "health",
                "market.powerful-capabilities-need-review",
                "rates API documented",
            ][..],
        ),
        ("/market?q=numbers", &["Data processor", "1 plugin(s)"][..]),
    ] {
        let (dom, log) = run(&chromium, profile.path(), &["--dump-dom"], &url(path)).await;
        for text in expect {
            assert!(dom.contains(text), "{path}: `{text}` missing from\n{dom}");
        }
        let errors = console_errors(&log);
        assert!(errors.is_empty(), "{path}: console errors: {errors:#?}");
        // The stylesheet was applied (a CSP refusal would leave the page unstyled and log).
        let shot = shots.path().join("page.png");
        let (_, log) = run(
            &chromium,
            profile.path(),
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1280,1400",
            ],
            &url(path),
        )
        .await;
        assert!(console_errors(&log).is_empty(), "{path}: {log}");
        let (share, width) = painted(&shot);
        assert_eq!(width, 1280);
        assert!(
            share > 0.05,
            "{path}: only {:.1}% of the screenshot is painted: an empty or broken page",
            share * 100.0
        );
    }
    // A broken page is told apart: an unknown plugin is a 404 page, still clean.
    let (dom, _) = run(
        &chromium,
        profile.path(),
        &["--dump-dom"],
        &url("/market/plugins/no-such-plugin"),
    )
    .await;
    assert!(dom.contains("Not found"), "{dom}");
    server.stop().await;
}

/// A page on another port of 127.0.0.1 (the same site, another origin) whose form posts
/// `token` to the server's sign-in route as soon as it loads: the browser then follows the
/// redirect to `/admin` with the session cookie, as after a person's sign-in.
async fn sign_in_page(server_base: &str, token: &str) -> String {
    let html = format!(
        "<!doctype html><html><body><form method=\"post\" action=\"{server_base}/admin/login\"><input name=\"token\" value=\"{token}\"></form><script>document.forms[0].submit()</script></body></html>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_dashboard_loads_clean_after_signing_in() {
    let Some(chromium) = chromium() else {
        return;
    };
    let server = Server::start(Default::default()).await;
    let admin = server.token("admin").await;
    // Something to show: a refused package.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/plugins", server.base))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(b"not a package".to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let start = sign_in_page(&server.base, &admin).await;
    let profile = tempfile::tempdir().unwrap();
    let wait = "--virtual-time-budget=10000";
    let (dom, log) = run(&chromium, profile.path(), &["--dump-dom", wait], &start).await;
    for text in [
        "Security",
        "Audit log",
        "intact",
        "Refused packages",
        "Recent verification failures",
        "Most run plugins",
        "Sign out",
    ] {
        assert!(dom.contains(text), "/admin: `{text}` missing from\n{dom}");
    }
    let errors = console_errors(&log);
    assert!(errors.is_empty(), "/admin: console errors: {errors:#?}");
    let shots = tempfile::tempdir().unwrap();
    let shot = shots.path().join("admin.png");
    let (_, log) = run(
        &chromium,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1400",
            wait,
        ],
        &start,
    )
    .await;
    assert!(console_errors(&log).is_empty(), "/admin: {log}");
    if let Some(keep) = std::env::var_os("SECFLOW_KEEP_SCREENSHOTS") {
        std::fs::copy(&shot, std::path::Path::new(&keep).join("admin.png")).unwrap();
    }
    let (share, width) = painted(&shot);
    assert_eq!(width, 1280);
    assert!(
        share > 0.05,
        "/admin: only {:.1}% of the screenshot is painted: an empty or broken page",
        share * 100.0
    );
    // Without signing in, the browser lands on the sign-in form.
    let fresh = tempfile::tempdir().unwrap();
    let (dom, _) = run(
        &chromium,
        fresh.path(),
        &["--dump-dom"],
        &format!("{}/admin", server.base),
    )
    .await;
    assert!(
        dom.contains("API token") && !dom.contains("Audit log"),
        "{dom}"
    );
    server.stop().await;
}
