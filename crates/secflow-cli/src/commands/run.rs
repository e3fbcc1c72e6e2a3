//! `secflow run ID` / `secflow run --dev DIR`: one sandboxed invocation of a bundled or
//! installed plugin, or of a plugin's source directory.

use crate::cli::RunArgs;
use crate::exit::{Exit, HostResultExt, fail};
use anyhow::Context;
use secflow_host::Host;
use secflow_runtime::Invocation;
use secflow_term::{escape, escape_line};
use std::io::Read;

pub fn run(host: &Host, args: RunArgs) -> anyhow::Result<Exit> {
    let config = parse_config(&args.config)?;
    let mounts = super::plugin::install::parse_mounts(&args.mounts)?;
    let input = read_input(args.input.as_deref())?;
    // Bundled and installed plugins by id, cleared by the host; a plugin directory runs as
    // the developer's own, with what it declares. Every run goes through the same
    // after-run path and is recorded in the audit log.
    let cleared = match (&args.plugin, &args.dev) {
        (Some(id), _) => {
            super::marketplace::poll_revocations(host);
            host.block_on(host.clear(id)).cli()?
        }
        (None, Some(dir)) => {
            let (manifest, wasm) = secflow_host::read_plugin_dir(dir).cli()?;
            secflow_host::Cleared::dev(manifest, wasm)
        }
        (None, None) => {
            return Err(fail(
                Exit::Usage,
                "name a bundled or installed plugin (`secflow run ID`) or a plugin directory (`--dev DIR`)",
            ));
        }
    };
    let call = secflow_host::build_call(
        cleared.manifest.kind,
        secflow_host::CallRequest {
            health: args.health,
            action: args.action.clone(),
            input,
            config: config.clone(),
        },
    )
    .cli()?;
    let (inv, after) = host
        .block_on(host.invoke(&cleared, call, &config, &mounts))
        .cli()?;
    if let Some(reason) = &after.quarantined {
        let id = cleared.id();
        errln!(
            "warning: {id} is quarantined ({reason}); it stays off until `secflow plugin release {id}`"
        );
    }
    print(&args, &inv)?;
    Ok(exit_of(&inv))
}

/// The exit code of an invocation's outcome.
fn exit_of(inv: &Invocation) -> Exit {
    match &inv.outcome {
        Ok(_) => Exit::Success,
        Err(secflow_runtime::InvokeError::InvalidConfig { .. }) => Exit::Usage,
        Err(secflow_runtime::InvokeError::Unsupported { .. }) => Exit::Usage,
        // The host could not set up what the plugin was granted (e.g. a missing directory).
        Err(secflow_runtime::InvokeError::Host { .. }) => Exit::Usage,
        Err(_) => Exit::PluginFailed,
    }
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

/// The most resident memory this process has had (`VmHWM`), where the OS tells: what the
/// plugin made the host hold, on top of the host's own needs.
fn host_peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn print(args: &RunArgs, inv: &Invocation) -> anyhow::Result<()> {
    if args.json {
        let host = serde_json::json!({ "peak_rss_bytes": host_peak_rss() });
        let value = match (&inv.outcome, args.report) {
            (Ok(output), false) => serde_json::to_value(output)?,
            (Ok(output), true) => serde_json::json!({
                "output": output, "report": inv.report, "logs": inv.logs, "host": host
            }),
            (Err(error), _) => serde_json::json!({
                "error": error, "message": error.to_string(), "report": inv.report,
                "host": host
            }),
        };
        outln!("{}", secflow_term::to_json_pretty(&value)?);
        return Ok(());
    }
    // Everything below the plugin controls (log text, fields, its error and panic
    // messages, denial reasons): escaped so it cannot drive the terminal.
    for line in &inv.logs {
        let fields: String = line
            .fields
            .iter()
            .map(|(k, v)| format!(" {}={}", escape_line(k), escape_line(v)))
            .collect();
        errln!("[{}] {}{fields}", line.level, escape_line(&line.message));
    }
    match &inv.outcome {
        Ok(output) => outln!("{}", secflow_term::to_json_pretty(output)?),
        Err(error) => errln!(
            "error: {}: {}",
            inv.report.plugin,
            escape(&error.to_string())
        ),
    }
    if args.report || inv.outcome.is_err() {
        let r = &inv.report;
        errln!(
            "{} {} · {} · {:.2} ms · peak memory {} KiB · in {} B · out {} B · http {}{}{}",
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
            host_peak_rss()
                .map(|b| format!(" · host peak RSS {} MiB", b >> 20))
                .unwrap_or_default(),
        );
        let h = &r.host;
        errln!(
            "host kept: {} log line(s) ({} B), {} metric sample(s) ({} B), stdout {} B, stderr {} B; wrote {} B in {} new file(s)",
            h.budget.log_lines,
            h.budget.log_bytes,
            h.budget.metric_samples,
            h.budget.metric_bytes,
            h.stdout_bytes,
            h.stderr_bytes,
            h.fs_bytes_written,
            h.fs_files_created,
        );
        for denial in &r.denials {
            errln!("denied: {}", escape_line(denial));
        }
    }
    Ok(())
}
