//! Fuzzes the manifest parser and validator with arbitrary bytes, as TOML and as YAML, and
//! config validation against whatever schema a valid manifest carries. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secflow_manifest::{Format, Manifest};

fuzz_target!(|data: &[u8]| {
    for format in [Format::Toml, Format::Yaml] {
        if let Ok(m) = Manifest::parse(data, format, "fuzz") {
            let _ = m.limits.resolve();
            let _ = m.validate_config(&serde_json::json!({"a": 1, "b": [true, null]}));
            for net in &m.capabilities.network {
                if let Some(p) = net.pattern() {
                    let _ = p.matches("api.example.com");
                }
            }
        }
    }
});
