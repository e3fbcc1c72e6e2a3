//! `secflow serve` as a user runs it: the binary on a fresh state directory, tokens made by
//! `secflow token create`, requests over a real socket. Then the crash test: the server is
//! killed with SIGKILL while installs and a scan job are in flight, started again, and the
//! registry (`plugin check`), the scan queue and the audit log (`audit verify`) must be
//! consistent.

mod common;

use common::http::{Server, free_port, json, request};
use common::{demo, text};
use secflow_plugin_artifacts as artifacts;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Env {
    tmp: tempfile::TempDir,
    home: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let env = Env { tmp, home };
        env.ok(&["key", "generate", "--name", "pub"]);
        env.ok(&["trust", "add", "pub", "--role", "publisher"]);
        env
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_secflow"));
        cmd.env("SECFLOW_HOME", &self.home)
            .env_remove("SECFLOW_LOG")
            .current_dir(self.tmp.path())
            .stdin(Stdio::null());
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} exited {:?}: {}{}",
            out.status.code(),
            text(&out.stderr),
            text(&out.stdout)
        );
        text(&out.stdout)
    }

    /// The data processor at `version`, packed and signed by `pub`.
    fn data_processor(&self, version: &str) -> Vec<u8> {
        let manifest =
            std::fs::read_to_string(Path::new(artifacts::DATA_PROCESSOR.dir).join("plugin.toml"))
                .unwrap()
                .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
        let dir = self.tmp.path().join("src").join(version);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
        std::fs::copy(artifacts::DATA_PROCESSOR.component, dir.join("plugin.wasm")).unwrap();
        let file = self.tmp.path().join(format!("dp-{version}.sfpkg"));
        self.ok(&[
            "plugin",
            "pack",
            dir.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ]);
        self.ok(&["plugin", "sign", file.to_str().unwrap(), "--key", "pub"]);
        std::fs::read(file).unwrap()
    }

    fn token(&self, role: &str) -> String {
        self.ok(&["token", "create", "--role", role, "--name", role])
            .trim()
            .to_string()
    }

    fn serve(&self, port: u16) -> Server {
        let child = self
            .cmd()
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server::started(child, port)
    }
}

fn demo_tar_gz(dir: &Path) -> Vec<u8> {
    let out = dir.join("demo.tar.gz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(demo())
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

fn wait_for_job(port: u16, token: &str, id: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (status, body) =
            request(port, "GET", &format!("/v1/scans/{id}"), Some(token), None).unwrap();
        assert_eq!(status, 200);
        let job = json(&body);
        if !matches!(job["state"].as_str(), Some("queued" | "running")) {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The issue's done-means, as curl would do it, then SIGKILL in the middle of work.
#[test]
fn serve_installs_runs_scans_and_survives_a_kill() {
    let env = Env::new();
    let admin = env.token("admin");
    let viewer = env.token("viewer");
    let dp = env.data_processor("0.2.0");
    let port = free_port();
    let server = env.serve(port);

    // A viewer is refused the install with 403 naming the policy.
    let pkg = Some(("application/octet-stream", dp.as_slice()));
    let (status, body) =
        request(port, "POST", "/v1/plugins?approve=all", Some(&viewer), pkg).unwrap();
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("api.viewer-read-only"));
    // The admin installs and runs it.
    let (status, body) =
        request(port, "POST", "/v1/plugins?approve=all", Some(&admin), pkg).unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let input = br#"{"action":"aggregate","input":{"data":[1,2,3],"operation":"sum"}}"#;
    let (status, body) = request(
        port,
        "POST",
        "/v1/plugins/data-processor/run",
        Some(&admin),
        Some(("application/json", input)),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(json(&body)["output"], 6);
    // A scan of the demo as a .tar.gz, and its SARIF.
    let archive = demo_tar_gz(env.tmp.path());
    let (status, body) = request(
        port,
        "POST",
        "/v1/scans",
        Some(&admin),
        Some(("application/gzip", &archive)),
    )
    .unwrap();
    assert_eq!(status, 202);
    let id = json(&body)["id"].as_str().unwrap().to_string();
    assert_eq!(wait_for_job(port, &admin, &id)["state"], "done");
    let (status, body) = request(
        port,
        "GET",
        &format!("/v1/scans/{id}/report?format=sarif"),
        Some(&admin),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(json(&body)["version"], "2.1.0");
    let (status, body) = request(port, "GET", "/metrics", Some(&admin), None).unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("secflow_scans_total"));
    let (status, body) = request(port, "POST", "/v1/audit/verify", Some(&admin), None).unwrap();
    assert_eq!(
        (status, json(&body)["intact"].clone()),
        (200, serde_json::json!(true))
    );

    // 10,000 connections opened at once and dropped (the server is another process, so each
    // side has its own descriptors): it keeps answering.
    let mut open = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        open.push(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    drop(open);
    assert_eq!(
        request(port, "GET", "/livez", None, None).map(|r| r.0),
        Some(200)
    );

    // SIGKILL while a scan job runs and upgrades stream in.
    let packages: Vec<Vec<u8>> = (1..=6)
        .map(|n| env.data_processor(&format!("0.3.{n}")))
        .collect();
    let (status, body) = request(
        port,
        "POST",
        "/v1/scans",
        Some(&admin),
        Some(("application/gzip", &archive)),
    )
    .unwrap();
    assert_eq!(status, 202);
    let interrupted = json(&body)["id"].as_str().unwrap().to_string();
    let uploader = {
        let admin = admin.clone();
        std::thread::spawn(move || {
            for p in &packages {
                if request(
                    port,
                    "POST",
                    "/v1/plugins?upgrade=true&approve=all",
                    Some(&admin),
                    Some(("application/octet-stream", p)),
                )
                .is_none()
                {
                    break;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    drop(server); // SIGKILL
    uploader.join().unwrap();

    // Started again: the registry and the audit log are consistent, and the interrupted
    // job is run again to the end.
    env.ok(&["plugin", "check"]);
    env.ok(&["audit", "verify"]);
    let _server = env.serve(port);
    let job = wait_for_job(port, &admin, &interrupted);
    assert_eq!(job["state"], "done", "{job}");
    let (status, body) = request(
        port,
        "POST",
        "/v1/plugins/data-processor/run",
        Some(&admin),
        Some(("application/json", input)),
    )
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, body) = request(port, "POST", "/v1/audit/verify", Some(&admin), None).unwrap();
    assert_eq!(json(&body)["intact"], true);
}
