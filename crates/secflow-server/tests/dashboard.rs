//! The administrators' security dashboard (`/admin`, `GET /v1/security`) on a real server:
//! sign-in with a token kept in an HttpOnly, SameSite=Strict cookie that the JSON API never
//! accepts; only tokens the API policies allow `security.read` get in; and what it shows
//! comes from the audit log and the registry (violations, a quarantine, a refused package,
//! the integrity check, the busiest plugins).

mod common;

use common::Server;
use std::time::Duration;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A server whose log holds three memory-limit violations (and so a quarantine), one
/// clean run, one run the policies refused and one refused package.
async fn seeded() -> (Server, String) {
    let server = Server::start(Default::default()).await;
    let admin = server.token("admin").await;
    let http = client();
    let work = tempfile::tempdir().unwrap();
    let package = common::signed_plugin(
        &server.host,
        work.path(),
        &secflow_plugin_artifacts::TEST_HOSTILE,
        None,
    );
    let r = http
        .post(format!("{}/v1/plugins?approve=all", server.base))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(package)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let run = |action: &'static str| {
        let http = http.clone();
        let url = format!("{}/v1/plugins/test-hostile/run", server.base);
        let admin = admin.clone();
        async move {
            http.post(url)
                .bearer_auth(&admin)
                .json(&serde_json::json!({ "action": action }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(run("noop").await, 200);
    for _ in 0..3 {
        assert_ne!(run("alloc").await, 200);
    }
    // Quarantined now: the policies refuse the next run.
    assert_eq!(run("noop").await, 403);
    let r = http
        .post(format!("{}/v1/plugins", server.base))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(b"PK\x03\x04 certainly not a signed package".to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    (server, admin)
}

fn cookie_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_administrators_sign_in_and_the_cookie_never_reaches_the_api() {
    let (server, admin) = seeded().await;
    let viewer = server.token("viewer").await;
    let http = client();
    let url = |path: &str| format!("{}{path}", server.base);

    // No session: to the sign-in page, which is a strict-CSP form.
    let r = http.get(url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/login");
    let r = http.get(url("/admin/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("name=\"token\"") && !html.contains("Sign out"),
        "{html}"
    );

    // Wrong tokens: no cookie, and the reason on the page.
    let login = |token: &str| {
        http.post(url("/admin/login"))
            .form(&[("token", token)])
            .send()
    };
    let r = login(&viewer).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(cookie_of(&r).is_none());
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("api.administer-admin-only")
    );
    let r = login("sft_not-a-real-token").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(cookie_of(&r).is_none());
    for hostile in ["a; Path=/; Domain=evil.example", "x\r\nSet-Cookie: y=1", ""] {
        let r = login(hostile).await.unwrap();
        assert!(
            r.status() == 401 || r.status() == 422,
            "{hostile:?}: {}",
            r.status()
        );
        assert!(cookie_of(&r).is_none(), "{hostile:?}");
    }
    let r = http
        .post(url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("no-token-field=1")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());

    // An administrator: a cookie for /admin only, unreadable by scripts, never sent
    // cross-site, for 8 hours.
    let r = login(&admin).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin");
    let set = cookie_of(&r).unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP here: {set}");
    let cookie = set.split(';').next().unwrap().to_string();

    let r = http
        .get(url("/admin"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    for text in [
        "Audit log",
        "intact",
        "Recent sandbox violations",
        "Quarantined plugins",
        "test-hostile",
        "Recent verification failures",
        "Most run plugins",
        "Sign out",
    ] {
        assert!(html.contains(text), "`{text}` missing from\n{html}");
    }

    // The JSON API takes bearer tokens only: the cookie alone is unauthenticated.
    let r = http
        .get(url("/v1/security"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(url("/v1/tokens"))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"name": "csrf", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Signing out expires the cookie; a revoked token's cookie stops working.
    let r = http.post(url("/admin/logout")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(cookie_of(&r).unwrap().contains("Max-Age=0"));
    let id = server
        .host
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.role == "admin")
        .unwrap()
        .id;
    server.host.revoke_token(&id).await.unwrap();
    let r = http
        .get(url("/admin"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_as_json_for_administrators() {
    let (server, admin) = seeded().await;
    let viewer = server.token("viewer").await;
    let http = client();
    let url = |path: &str| format!("{}{path}", server.base);
    let r = http
        .get(url("/v1/security"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for bad in ["?recent=0", "?recent=201", "?recent=many"] {
        let r = http
            .get(url(&format!("/v1/security{bad}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let o: serde_json::Value = http
        .get(url("/v1/security?recent=2"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(o["audit_intact"], true, "{o}");
    assert!(o["audit"]["entries"].as_u64().unwrap() > 5, "{o}");
    // Newest first, and no more than asked for.
    let violations = o["recent_violations"].as_array().unwrap();
    assert_eq!(violations.len(), 2, "{o}");
    assert!(violations[0]["seq"].as_u64() > violations[1]["seq"].as_u64());
    assert!(
        violations
            .iter()
            .all(|v| v["action"] == "sandbox.violation" && v["plugin"]["id"] == "test-hostile")
    );
    assert_eq!(o["summary"]["sandbox_violations"], 3, "{o}");
    assert!(
        !o["recent_verification_failures"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{o}"
    );
    assert!(
        !o["recent_policy_denials"].as_array().unwrap().is_empty(),
        "{o}"
    );
    assert_eq!(o["quarantined"][0]["id"], "test-hostile", "{o}");
    assert_eq!(o["top_by_runs"][0]["plugin_id"], "test-hostile");
    assert_eq!(o["top_by_runs"][0]["executions"], 4, "{o}");
    assert_eq!(o["top_by_errors"][0]["violations"], 3, "{o}");
    server.stop().await;
}
