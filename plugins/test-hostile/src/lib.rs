//! Test plugin that attacks its sandbox. Each action is one attack; the host tests assert
//! the typed error it gets and that the next invocation still works.

use secflow_pdk::prelude::*;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

struct Hostile;

static COUNTER: AtomicU64 = AtomicU64::new(0);
static mut LEAK: Vec<Vec<u8>> = Vec::new();

impl Plugin for Hostile {
    fn init(config: &Value) -> Result<(), PluginError> {
        if config.get("fail-init").is_some() {
            return Err(invalid_config("asked to fail"));
        }
        Ok(())
    }
}

fn param<'a>(params: &'a Value, key: &str) -> &'a str {
    params.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The size knob of an attack: `params[key]`, or `default`.
fn size(params: &Value, key: &str, default: u64) -> usize {
    params.get(key).and_then(Value::as_u64).unwrap_or(default) as usize
}

/// One of every class of character a terminal acts on: CSI colour, OSC 8 hyperlink ended by
/// BEL, BEL, a C1 CSI, a bidi override and an isolate, backspace, DEL.
const CONTROLS: &str = "evil \u{1b}[31mred\u{1b}[0m \u{1b}]8;;https://evil.example/\u{7}link\u{1b}]8;;\u{7} \
                        bell\u{7} c1\u{9b}2J \u{202e}desrever\u{202c} \u{2066}iso\u{2069} back\u{8}space del\u{7f}";

/// Bytes that are not UTF-8, where the ABI says `string`: the host must not trust the
/// guest's side of it.
const NOT_UTF8: [u8; 4] = [b'o', b'k', 0xff, 0xfe];

#[link(wasm_import_module = "secflow:plugin/host@0.1.0")]
unsafe extern "C" {
    /// The raw `host.log` import (canonical ABI: level, message ptr/len, fields ptr/len),
    /// so the message can be bytes no `&str` may hold.
    #[link_name = "log"]
    fn raw_log(level: i32, message: *const u8, len: usize, fields: *const u8, fields_len: usize);
}

/// `symlink-at` on the preopen that holds `link` (std has no stable symlink on WASI).
fn symlink(target: &str, link: &str) -> Result<(), String> {
    for (dir, guest) in wasip2::filesystem::preopens::get_directories() {
        if let Some(rest) = link.strip_prefix(&format!("{}/", guest.trim_end_matches('/'))) {
            return dir.symlink_at(target, rest).map_err(|e| format!("{e:?}"));
        }
    }
    Err(format!("{link} is not under a granted directory"))
}

/// Recursion whose every frame holds `N` bytes of locals in the guest stack.
#[inline(never)]
fn recurse_big<const N: usize>(n: u64) -> u64 {
    let mut frame = black_box([0u8; N]);
    frame[(n as usize) % N] = n as u8;
    if n == 0 {
        return u64::from(frame[0]);
    }
    black_box(recurse_big::<N>(n - 1) + u64::from(black_box(&frame)[1]))
}

/// Drives one host import `count` times with arguments of `bytes` bytes; stops at the first
/// error and reports how far it got. Used by the budget tests, one import per action.
fn drive(import: &str, count: usize, bytes: usize, params: &Value) -> Result<Value, PluginError> {
    let text = "D".repeat(bytes);
    let dir = param(params, "dir");
    let mut done = 0usize;
    for i in 0..count {
        let step: Result<(), String> = match import {
            "log" => {
                log::info(&text);
                Ok(())
            }
            "log-fields" => {
                let fields: Vec<(String, String)> = (0..bytes)
                    .map(|f| (format!("f{f}"), String::new()))
                    .collect();
                let borrowed: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                log::with_fields(log::Level::Info, "fields", &borrowed);
                Ok(())
            }
            "metric" => {
                let series = format!("{i}");
                secflow_pdk::emit_metric("m", 1.0, &[("series", &series), ("pad", &text)]);
                Ok(())
            }
            "metric-repeat" => {
                secflow_pdk::emit_metric("m", i as f64, &[("same", "series")]);
                Ok(())
            }
            "metric-labels" => {
                let labels: Vec<(String, String)> = (0..bytes)
                    .map(|l| (format!("l{l}"), "v".to_string()))
                    .collect();
                let borrowed: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                secflow_pdk::emit_metric("m", 1.0, &borrowed);
                Ok(())
            }
            "stdout" => {
                use std::io::Write;
                std::io::stdout()
                    .write_all(format!("{text}\n").as_bytes())
                    .map_err(|e| e.to_string())
            }
            "stderr" => {
                use std::io::Write;
                std::io::stderr()
                    .write_all(format!("{text}\n").as_bytes())
                    .map_err(|e| e.to_string())
            }
            "kv" => secflow_pdk::kv::set(&format!("k{i}"), text.as_bytes())
                .map_err(|e| format!("{e:?}")),
            "fs-bytes" => {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(format!("{dir}/fill"))
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .map_err(|e| e.to_string())
            }
            "fs-files" => std::fs::write(format!("{dir}/f{i}"), b"").map_err(|e| e.to_string()),
            other => return Err(invalid_input(format!("no import `{other}`"))),
        };
        if let Err(e) = step {
            return Ok(json!({"done": done, "error": e}));
        }
        done += 1;
    }
    Ok(json!({"done": done}))
}

/// Recursion that keeps everything in registers: it exhausts the host-bounded native wasm
/// stack, not the guest's stack in linear memory. The rotate keeps LLVM from turning it
/// into a loop.
#[inline(never)]
fn recurse_in_registers(n: u64) -> u64 {
    if n == 0 {
        return 1;
    }
    recurse_in_registers(n - 1).rotate_left(3) ^ n
}

/// A local array larger than the whole guest stack, in its own frame (in `execute` it would
/// enlarge the frame of every action).
#[inline(never)]
fn big_local() -> u8 {
    let buf = black_box([7u8; 256 << 10]);
    buf[black_box(5)]
}

#[inline(never)]
fn recurse(n: u64, pad: [u64; 16]) -> u64 {
    if n == 0 {
        return pad[0];
    }
    black_box(recurse(n - 1, black_box(pad)) + pad[(n % 16) as usize])
}

impl Action for Hostile {
    fn actions() -> Vec<ActionInfo> {
        [
            "noop",
            "loop",
            "spin",
            "grow",
            "alloc",
            "recurse",
            "recurse-in-registers",
            "out-of-bounds",
            "big-local",
            "flood-stdout",
            "flood-log",
            "huge-output",
            "read-file",
            "write-file",
            "list-dir",
            "env",
            "counter",
            "http-get",
            "kv-set",
            "kv-get",
            "trap",
            "drive",
            "sequence",
            "panic-with-controls",
            "print-controls",
            "invalid-utf8-output",
            "invalid-utf8-log",
            "recurse-big-frames",
            "symlink",
            "hard-link",
            "rename",
        ]
        .iter()
        .map(|a| action(a, "attack", &[]))
        .collect()
    }

    #[allow(static_mut_refs)]
    fn execute(name: &str, params: Value) -> Result<Value, PluginError> {
        match name {
            "noop" => Ok(json!("ok")),
            // An infinite loop that keeps calling into the host (an import that keeps nothing,
            // so only the deadline can stop it).
            "loop" => loop {
                black_box(secflow_pdk::config_get("spin"));
            },
            // A busy loop with no calls at all.
            "spin" => {
                let mut x: u64 = black_box(1);
                loop {
                    x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            // memory.grow straight from wasm until it fails, then touch more than granted.
            "grow" => {
                let mut pages = 0usize;
                loop {
                    let r = core::arch::wasm32::memory_grow(0, 16);
                    if r == usize::MAX {
                        return Ok(json!({"grown_pages": pages, "refused": true}));
                    }
                    pages += 16;
                }
            }
            // Allocate through the Rust allocator without bound.
            "alloc" => loop {
                let chunk = vec![7u8; 1 << 20];
                unsafe { LEAK.push(black_box(chunk)) };
            },
            "recurse" => Ok(json!(recurse(u64::MAX / 2, [3; 16]))),
            "recurse-in-registers" => Ok(json!(recurse_in_registers(black_box(u64::MAX / 2)))),
            // A local array larger than the whole guest stack.
            "big-local" => Ok(json!(big_local())),
            // A store far outside linear memory, as a memory bug in unsafe code would make
            // (1 GiB: past any memory the host allows, below where a wrapped stack lands).
            "out-of-bounds" => {
                let addr = black_box(0x4000_0000usize) as *mut u8;
                unsafe { addr.write_volatile(1) };
                Ok(json!("unreachable"))
            }
            "flood-stdout" => loop {
                println!("{}", "A".repeat(4096));
            },
            "flood-log" => loop {
                log::info(&"B".repeat(4096));
            },
            "huge-output" => Ok(Value::String("C".repeat(size(&params, "bytes", 2 << 20)))),
            "read-file" => std::fs::read_to_string(param(&params, "path"))
                .map(Value::from)
                .map_err(|e| PluginError::Denied(e.to_string())),
            "write-file" => std::fs::write(param(&params, "path"), param(&params, "content"))
                .map(|()| json!("written"))
                .map_err(|e| PluginError::Denied(e.to_string())),
            "list-dir" => std::fs::read_dir(param(&params, "path"))
                .map(|rd| {
                    let mut names: Vec<String> = rd
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    json!(names)
                })
                .map_err(|e| PluginError::Denied(e.to_string())),
            "env" => Ok(json!({
                "vars": std::env::vars().collect::<Vec<_>>(),
                "args": std::env::args().collect::<Vec<_>>(),
                "home": std::env::var("HOME").ok(),
                "cwd": std::env::current_dir().ok().map(|p| p.display().to_string()),
            })),
            "counter" => {
                let before = COUNTER.fetch_add(1, Ordering::SeqCst);
                let kept = unsafe {
                    LEAK.push(vec![1]);
                    LEAK.len()
                };
                Ok(json!({"counter_before": before, "leaked_vectors": kept}))
            }
            "http-get" => match secflow_pdk::http::get(param(&params, "url")) {
                Ok(r) => Ok(json!({"status": r.status, "body": r.text(), "url": r.url})),
                Err(e) => Err(PluginError::Denied(e.to_string())),
            },
            "kv-set" => {
                secflow_pdk::kv::set(param(&params, "key"), param(&params, "value").as_bytes())
                    .map(|()| json!("set"))
                    .map_err(|e| failed(format!("{e:?}")))
            }
            "kv-get" => secflow_pdk::kv::get(param(&params, "key"))
                .map(|v| json!(v.map(|b| String::from_utf8_lossy(&b).into_owned())))
                .map_err(|e| failed(format!("{e:?}"))),
            "trap" => panic!("deliberate trap"),
            // One host import, `count` times with `bytes`-sized arguments.
            "drive" => drive(
                param(&params, "import"),
                size(&params, "count", 1),
                size(&params, "bytes", 0),
                &params,
            ),
            // Several imports in a row, as `[[import, count, bytes], ...]`; errors are
            // reported and the sequence goes on, as a plugin ignoring them would.
            "sequence" => {
                let steps = params.get("steps").and_then(Value::as_array).cloned();
                let mut out = Vec::new();
                for step in steps.unwrap_or_default() {
                    let import = step[0].as_str().unwrap_or("");
                    let count = step[1].as_u64().unwrap_or(0) as usize;
                    let bytes = step[2].as_u64().unwrap_or(0) as usize;
                    out.push(drive(import, count, bytes, &params)?);
                }
                Ok(json!(out))
            }
            // Every class of terminal control a message could carry, in a panic message.
            "panic-with-controls" => panic!("{CONTROLS}"),
            // ... and through every other channel: host log (message and field), stdout,
            // stderr and the returned value.
            "print-controls" => {
                log::with_fields(log::Level::Warn, CONTROLS, &[("field", CONTROLS)]);
                println!("{CONTROLS}");
                eprintln!("{CONTROLS}");
                Ok(json!({ "text": CONTROLS }))
            }
            "invalid-utf8-output" => {
                // The PDK copies the string's bytes into the result without looking at them;
                // nothing in the guest reads it as text.
                let bytes = black_box(NOT_UTF8.to_vec());
                Ok(Value::String(unsafe { String::from_utf8_unchecked(bytes) }))
            }
            "invalid-utf8-log" => {
                let bytes = black_box(NOT_UTF8);
                unsafe { raw_log(2, bytes.as_ptr(), bytes.len(), std::ptr::null(), 0) };
                Ok(json!("logged"))
            }
            // Deep recursion with 16 KiB frames: a few frames overflow the 128 KiB guest
            // stack, far fewer than a backtrace would need to see a repeat.
            "recurse-big-frames" => Ok(json!(recurse_big::<16384>(black_box(1 << 20)))),
            "symlink" => symlink(param(&params, "target"), param(&params, "link"))
                .map(|()| json!("linked"))
                .map_err(PluginError::Denied),
            "hard-link" => std::fs::hard_link(param(&params, "from"), param(&params, "to"))
                .map(|()| json!("linked"))
                .map_err(|e| PluginError::Denied(e.to_string())),
            "rename" => std::fs::rename(param(&params, "from"), param(&params, "to"))
                .map(|()| json!("renamed"))
                .map_err(|e| PluginError::Denied(e.to_string())),
            other => Err(invalid_input(format!("unknown attack {other}"))),
        }
    }
}

secflow_pdk::export_action!(Hostile);
