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
        ]
        .iter()
        .map(|a| action(a, "attack", &[]))
        .collect()
    }

    #[allow(static_mut_refs)]
    fn execute(name: &str, params: Value) -> Result<Value, PluginError> {
        match name {
            "noop" => Ok(json!("ok")),
            // An infinite loop that keeps calling into the host.
            "loop" => loop {
                secflow_pdk::emit_metric("spin", 1.0, &[]);
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
            // A store far outside linear memory, as a memory bug in unsafe code would make.
            "out-of-bounds" => {
                let addr = black_box(0xFFFF_FF00usize) as *mut u8;
                unsafe { addr.write_volatile(1) };
                Ok(json!("unreachable"))
            }
            "flood-stdout" => loop {
                println!("{}", "A".repeat(4096));
            },
            "flood-log" => loop {
                log::info(&"B".repeat(4096));
            },
            "huge-output" => Ok(Value::String("C".repeat(2 << 20))),
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
            other => Err(invalid_input(format!("unknown attack {other}"))),
        }
    }
}

secflow_pdk::export_action!(Hostile);
