//! `secflow run --dev DIR`: one sandboxed invocation from a plugin's source directory.

use crate::cli::RunArgs;
use crate::exit::{Exit, fail};
use crate::home::Home;
use anyhow::Context;
use secflow_manifest::PluginKind;
use secflow_runtime::bindings as b;
use secflow_runtime::{Call, Grants, Invocation};
use std::io::Read;
use std::path::PathBuf;

pub fn run(home: &Home, args: RunArgs) -> anyhow::Result<Exit> {
    let (manifest, wasm) = super::read_plugin_dir(&args.dev)?;
    let config = parse_config(&args.config)?;
    let mounts = parse_mounts(&args.mounts)?;
    let input = read_input(args.input.as_deref())?;
    let call = build_call(manifest.kind, &args, input, &config)?;
    let runtime = super::runtime(home)?;
    let grants = Grants::all_declared(&manifest, &mounts).map_err(|e| fail(Exit::Usage, e))?;
    let plugin = super::load(&runtime, manifest, &wasm, grants)?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let invocation = tokio.block_on(runtime.invoke(&plugin, call, &config));
    print(&args, &invocation)?;
    Ok(match &invocation.outcome {
        Ok(_) => Exit::Success,
        Err(secflow_runtime::InvokeError::InvalidConfig { .. }) => Exit::Usage,
        Err(secflow_runtime::InvokeError::Unsupported { .. }) => Exit::Usage,
        // The host could not set up what the plugin was granted (e.g. a missing directory).
        Err(secflow_runtime::InvokeError::Host { .. }) => Exit::Usage,
        Err(_) => Exit::PluginFailed,
    })
}

fn parse_config(pairs: &[String]) -> anyhow::Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| fail(Exit::Usage, format!("--config `{pair}` is not KEY=VALUE")))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        map.insert(key.to_string(), value);
    }
    Ok(serde_json::Value::Object(map))
}

fn parse_mounts(pairs: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    pairs
        .iter()
        .map(|pair| {
            let (guest, host) = pair
                .split_once('=')
                .ok_or_else(|| fail(Exit::Usage, format!("--mount `{pair}` is not GUEST=HOST")))?;
            Ok((guest.to_string(), PathBuf::from(host)))
        })
        .collect()
}

fn read_input(input: Option<&str>) -> anyhow::Result<Option<(String, Vec<u8>)>> {
    match input {
        None => Ok(None),
        Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("read stdin")?;
            Ok(Some(("<stdin>".to_string(), bytes)))
        }
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| fail(Exit::Usage, format!("cannot read --input {path}: {e}")))?;
            Ok(Some((path.to_string(), bytes)))
        }
    }
}

fn json_input<T: serde::de::DeserializeOwned>(
    input: &Option<(String, Vec<u8>)>,
    what: &str,
) -> anyhow::Result<T> {
    let (name, bytes) = input.as_ref().ok_or_else(|| {
        fail(
            Exit::Usage,
            format!("this plugin needs --input with {what}"),
        )
    })?;
    serde_json::from_slice(bytes)
        .map_err(|e| fail(Exit::Usage, format!("--input {name} is not {what}: {e}")))
}

fn build_call(
    kind: PluginKind,
    args: &RunArgs,
    input: Option<(String, Vec<u8>)>,
    config: &serde_json::Value,
) -> anyhow::Result<Call> {
    if args.health {
        return Ok(Call::Health);
    }
    if args.action.is_some() && kind != PluginKind::Action {
        return Err(fail(
            Exit::Usage,
            format!("--action applies to action plugins; this is a {kind} plugin"),
        ));
    }
    Ok(match kind {
        PluginKind::Action => match &args.action {
            None => Call::Actions,
            Some(action) => {
                let params = match &input {
                    Some((name, bytes)) => {
                        let text = std::str::from_utf8(bytes).map_err(|_| {
                            fail(Exit::Usage, format!("--input {name} is not UTF-8 JSON"))
                        })?;
                        serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                            fail(Exit::Usage, format!("--input {name} is not JSON: {e}"))
                        })?;
                        text.to_string()
                    }
                    None => "{}".to_string(),
                };
                Call::Execute {
                    action: action.clone(),
                    params,
                }
            }
        },
        PluginKind::Detector => {
            let (name, content) = input.ok_or_else(|| {
                fail(
                    Exit::Usage,
                    "a detector needs --input FILE (the file to scan)",
                )
            })?;
            Call::Detect(b::FileInput {
                path: name,
                content,
            })
        }
        PluginKind::Enricher => Call::Enrich(json_input(&input, "a JSON array of findings")?),
        PluginKind::Analytics => Call::Analyze(json_input(&input, "a JSON array of findings")?),
        PluginKind::ProxyFilter => {
            #[derive(serde::Deserialize)]
            struct Exchange {
                request: b::HttpRequest,
                response: Option<b::HttpResponse>,
            }
            let ex: Exchange =
                json_input(&input, "a JSON object {\"request\": .., \"response\": ..}")?;
            match ex.response {
                Some(resp) => Call::OnResponse(ex.request, resp),
                None => Call::OnRequest(ex.request),
            }
        }
        PluginKind::LogAnalyzer => {
            let (name, bytes) = input
                .ok_or_else(|| fail(Exit::Usage, "a log analyzer needs --input FILE (the log)"))?;
            let text = String::from_utf8_lossy(&bytes);
            let entries = text
                .lines()
                .enumerate()
                .map(|(i, line)| b::LogEntry {
                    line: i as u64 + 1,
                    timestamp: None,
                    message: line.to_string(),
                })
                .collect();
            Call::AnalyzeLogs {
                source: name,
                entries,
            }
        }
        PluginKind::DynamicTester => Call::RunTests {
            target: json_input(
                &input,
                "a JSON target {\"kind\",\"url\",\"description\",\"properties\"}",
            )?,
            config: config.to_string(),
        },
    })
}

fn print(args: &RunArgs, inv: &Invocation) -> anyhow::Result<()> {
    if args.json {
        let value = match (&inv.outcome, args.report) {
            (Ok(output), false) => serde_json::to_value(output)?,
            (Ok(output), true) => {
                serde_json::json!({"output": output, "report": inv.report, "logs": inv.logs})
            }
            (Err(error), _) => {
                serde_json::json!({"error": error, "message": error.to_string(), "report": inv.report})
            }
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for line in &inv.logs {
        eprintln!("[{}] {}", line.level, line.message);
    }
    match &inv.outcome {
        Ok(output) => println!("{}", serde_json::to_string_pretty(output)?),
        Err(error) => eprintln!("error: {}: {error}", inv.report.plugin),
    }
    if args.report || inv.outcome.is_err() {
        let r = &inv.report;
        eprintln!(
            "{} {} · {} · {:.2} ms · peak memory {} KiB · in {} B · out {} B · http {}{}",
            r.plugin,
            r.version,
            r.call,
            r.wall_time_us as f64 / 1000.0,
            r.peak_memory_bytes / 1024,
            r.bytes_in,
            r.bytes_out,
            r.http_requests,
            r.fuel_used
                .map(|f| format!(" · fuel {f}"))
                .unwrap_or_default(),
        );
        for denial in &r.denials {
            eprintln!("denied: {denial}");
        }
    }
    Ok(())
}
