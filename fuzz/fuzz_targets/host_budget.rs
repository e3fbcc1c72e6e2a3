//! Fuzzes the host's accounting of what plugins make it hold: arbitrary sequences of host
//! import calls (log lines with fields, metric samples with labels, stdout writes, writes
//! and removals in a writable grant) with arbitrary sizes and text, decoded from the input.
//! After every call the caps must hold: nothing charged past a limit, a refused call
//! charges nothing, a cut stream keeps whole lines and ends with its marker, a grant never
//! holds more than its quota. Also: terminal escaping leaves no raw control character and
//! safe JSON parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secflow_runtime::budget::{Budget, BudgetLimits, LogCall, MetricCall};
use secflow_runtime::capture::CapturedOutput;
use secflow_runtime::fsguard::{FsGuard, GrantQuota};
use secflow_runtime::guard::Guard;
use std::sync::{Arc, Mutex};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn size(&mut self) -> Option<usize> {
        let hi = self.byte()? as usize;
        let lo = self.byte()? as usize;
        Some((hi << 8 | lo) * (1 + (hi & 0x3)))
    }
    fn text(&mut self) -> Option<String> {
        let len = (self.byte()? as usize) % 48;
        let take = len.min(self.0.len());
        let (t, rest) = self.0.split_at(take);
        self.0 = rest;
        Some(String::from_utf8_lossy(t).into_owned())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let limits = BudgetLimits {
        log_lines: 50,
        log_bytes: 4096,
        capture_bytes: 1024,
    };
    let mut budget = Budget::new(limits);
    let guard = Guard::default();
    let stdout = CapturedOutput::new("stdout", limits.capture_bytes, guard.clone());
    let usage = Arc::new(Mutex::new(secflow_runtime::fsguard::Usage::default()));
    let fs = FsGuard::new(
        vec![GrantQuota {
            guest: "/out".into(),
            host: "/nonexistent".into(),
            write: true,
            usage: Some(usage.clone()),
            max_bytes: 10_000,
            max_files: 20,
        }],
        guard.clone(),
    );
    while let Some(op) = input.byte() {
        match op % 6 {
            0 => {
                let Some(message_len) = input.size() else { break };
                let n = input.byte().unwrap_or(0) as usize % 40;
                let fields: Vec<(usize, usize)> = (0..n)
                    .map(|_| (input.byte().unwrap_or(0) as usize, input.size().unwrap_or(0)))
                    .collect();
                let before = budget.usage();
                if budget
                    .charge_log(LogCall { message_len, fields: &fields })
                    .is_err()
                {
                    assert_eq!(budget.usage(), before, "a refused line charges nothing");
                }
            }
            1 => {
                let Some(name) = input.text() else { break };
                let n = input.byte().unwrap_or(0) as usize % 20;
                let labels: Vec<(String, String)> = (0..n)
                    .map(|_| (input.text().unwrap_or_default(), input.text().unwrap_or_default()))
                    .collect();
                let borrowed: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let before = budget.usage();
                if budget
                    .charge_metric(MetricCall { name: &name, labels: &borrowed })
                    .is_err()
                {
                    assert_eq!(budget.usage(), before, "a refused sample charges nothing");
                }
            }
            2 => {
                let Some(text) = input.text() else { break };
                let mut bytes = text.into_bytes();
                if input.byte().unwrap_or(0) % 2 == 0 {
                    bytes.push(b'\n');
                }
                let _ = stdout.accept(&bytes);
            }
            3 => {
                let Some(bytes) = input.size() else { break };
                let files = u64::from(input.byte().unwrap_or(0) % 3);
                let _ = fs.reserve(0, bytes as u64, files);
            }
            4 => {
                let Some(bytes) = input.size() else { break };
                fs.release(0, bytes as u64, u64::from(input.byte().unwrap_or(0) % 2));
            }
            _ => {
                let Some(text) = input.text() else { break };
                let line = secflow_term::escape_line(&text);
                assert!(!line.chars().any(secflow_term::is_unsafe));
                let json = secflow_term::to_json(&text).unwrap();
                assert!(!json.chars().any(secflow_term::is_unsafe));
                let back: String = serde_json::from_str(&json).unwrap();
                assert_eq!(back, text);
            }
        }
        let u = budget.usage();
        assert!(u.log_lines <= limits.log_lines && u.log_bytes <= limits.log_bytes);
        assert!(u.metric_samples <= secflow_runtime::budget::MAX_METRIC_SAMPLES);
        assert!(u.metric_series as usize <= secflow_runtime::budget::MAX_METRIC_SERIES);
        assert!(u.metric_bytes <= secflow_runtime::budget::MAX_METRIC_BYTES);
        let held = *usage.lock().unwrap();
        assert!(held.bytes <= 10_000 && held.files <= 20, "{held:?}");
    }
    let (lines, _) = stdout.lines_since(0);
    let kept: usize = lines.iter().map(|l| l.len() + 1).sum();
    if stdout.attempted() > limits.capture_bytes {
        let marker = lines.last().expect("a cut stream ends with its marker");
        assert!(marker.contains("cut here"), "{marker}");
    } else {
        assert!(kept <= limits.capture_bytes as usize + 1);
    }
});
