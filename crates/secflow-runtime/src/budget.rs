//! The budget of everything the host keeps on a plugin's behalf during one invocation (or
//! one detect session): host log lines, metric samples and captured stdout/stderr.
//!
//! Linear memory is capped by the memory limiter, but a plugin can also make the *host*
//! allocate: every `host.log` line, every metric sample and every byte printed is kept by the
//! host until the invocation ends. Each of those is counted here in bytes AND items, with a
//! fixed overhead per item so that a flood of empty lines or samples is not free, and a call
//! that would go past a cap is refused with a typed [`BudgetExceeded`] before anything is
//! copied. The import glue (`imports.rs`) measures arguments in the guest's memory, asks the
//! budget, and only then copies them into host memory.
//!
//! This module is plain data with no wasmtime types so that it can be fuzzed and
//! property-tested on its own.

use serde::Serialize;
use std::collections::HashSet;

/// Bytes charged per log line on top of its text: what the host spends on the line itself
/// (level, vectors, allocation headers). An empty line costs this much.
pub const LOG_LINE_OVERHEAD: u64 = 64;
/// Bytes charged per structured field of a log line on top of its key and value.
pub const LOG_FIELD_OVERHEAD: u64 = 16;
/// Most structured fields on one log line.
pub const MAX_LOG_FIELDS: usize = 32;

/// Bytes charged per metric sample on top of its name and labels.
pub const METRIC_SAMPLE_OVERHEAD: u64 = 48;
/// Bytes charged per label of a metric sample on top of its name and value.
pub const METRIC_LABEL_OVERHEAD: u64 = 16;
/// Most metric samples per invocation.
pub const MAX_METRIC_SAMPLES: u64 = 10_000;
/// Most distinct series (metric name + label set) per invocation.
pub const MAX_METRIC_SERIES: usize = 256;
/// Most labels on one sample.
pub const MAX_METRIC_LABELS: usize = 16;
/// Longest metric name, in bytes.
pub const MAX_METRIC_NAME_BYTES: usize = 128;
/// Longest label name, in bytes.
pub const MAX_LABEL_NAME_BYTES: usize = 64;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;
/// Most bytes of metric samples kept per invocation (samples × their charged size).
pub const MAX_METRIC_BYTES: u64 = 1 << 20;

/// The caps of one invocation, from the plugin's resolved limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    /// Most `host.log` lines.
    pub log_lines: u64,
    /// Most bytes of `host.log` lines (text, fields and overheads).
    pub log_bytes: u64,
    /// Most bytes captured from stdout, and separately from stderr.
    pub capture_bytes: u64,
}

impl BudgetLimits {
    pub fn of(limits: &secflow_manifest::ResolvedLimits) -> BudgetLimits {
        BudgetLimits {
            log_lines: limits.log_lines,
            log_bytes: limits.log_bytes,
            capture_bytes: limits.log_bytes,
        }
    }
}

/// Which cap a call would have crossed. Each maps to a typed invocation error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BudgetExceeded {
    /// `log-limit`: too many lines, bytes or fields.
    Log { what: String, limit: u64 },
    /// `metric-limit`: too many samples, series, labels, or a name or label too long.
    Metric { what: String, limit: u64 },
}

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetExceeded::Log { what, limit } | BudgetExceeded::Metric { what, limit } => {
                write!(f, "{what} (limit {limit})")
            }
        }
    }
}

/// What the budget has counted so far; part of every resource report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BudgetUsage {
    pub log_lines: u64,
    /// Charged bytes of `host.log` lines, overheads included.
    pub log_bytes: u64,
    pub metric_samples: u64,
    pub metric_series: u64,
    /// Charged bytes of metric samples, overheads included.
    pub metric_bytes: u64,
}

/// The running count for one invocation or session.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: BudgetLimits,
    usage: BudgetUsage,
    series: HashSet<u64>,
}

/// The size of a log call, measured before its arguments are copied.
#[derive(Debug, Clone, Copy)]
pub struct LogCall<'a> {
    pub message_len: usize,
    /// `(key length, value length)` of each field.
    pub fields: &'a [(usize, usize)],
}

/// The size and identity of a metric sample, measured before it is copied.
#[derive(Debug, Clone, Copy)]
pub struct MetricCall<'a> {
    pub name: &'a str,
    /// `(label name, label value)` pairs, borrowed from guest memory.
    pub labels: &'a [(&'a str, &'a str)],
}

impl Budget {
    pub fn new(limits: BudgetLimits) -> Budget {
        Budget {
            limits,
            usage: BudgetUsage::default(),
            series: HashSet::new(),
        }
    }

    pub fn limits(&self) -> BudgetLimits {
        self.limits
    }

    pub fn usage(&self) -> BudgetUsage {
        self.usage
    }

    /// Charges one `host.log` line, or says which cap it would cross (and charges nothing).
    pub fn charge_log(&mut self, call: LogCall<'_>) -> Result<(), BudgetExceeded> {
        let exceeded = |what: String, limit: u64| Err(BudgetExceeded::Log { what, limit });
        if call.fields.len() > MAX_LOG_FIELDS {
            return exceeded(
                format!("a log line carried {} structured fields", call.fields.len()),
                MAX_LOG_FIELDS as u64,
            );
        }
        if self.usage.log_lines >= self.limits.log_lines {
            return exceeded(
                format!(
                    "the plugin logged more than {} lines",
                    self.limits.log_lines
                ),
                self.limits.log_lines,
            );
        }
        let cost = log_cost(call);
        let total = self.usage.log_bytes.saturating_add(cost);
        if total > self.limits.log_bytes {
            return exceeded(
                format!(
                    "the plugin's log lines would take {total} bytes (each line costs its text, \
                     its fields and {LOG_LINE_OVERHEAD} bytes)"
                ),
                self.limits.log_bytes,
            );
        }
        self.usage.log_lines += 1;
        self.usage.log_bytes = total;
        Ok(())
    }

    /// Charges one metric sample, or says which cap it would cross (and charges nothing).
    pub fn charge_metric(&mut self, call: MetricCall<'_>) -> Result<(), BudgetExceeded> {
        let exceeded = |what: String, limit: u64| Err(BudgetExceeded::Metric { what, limit });
        if call.name.is_empty() || call.name.len() > MAX_METRIC_NAME_BYTES {
            return exceeded(
                format!(
                    "a metric name is {} bytes; names are 1 to {MAX_METRIC_NAME_BYTES} bytes",
                    call.name.len()
                ),
                MAX_METRIC_NAME_BYTES as u64,
            );
        }
        if call.labels.len() > MAX_METRIC_LABELS {
            return exceeded(
                format!("metric `{}` has {} labels", call.name, call.labels.len()),
                MAX_METRIC_LABELS as u64,
            );
        }
        for (name, value) in call.labels {
            if name.is_empty() || name.len() > MAX_LABEL_NAME_BYTES {
                return exceeded(
                    format!(
                        "a label name of metric `{}` is {} bytes; label names are 1 to \
                         {MAX_LABEL_NAME_BYTES} bytes",
                        call.name,
                        name.len()
                    ),
                    MAX_LABEL_NAME_BYTES as u64,
                );
            }
            if value.len() > MAX_LABEL_VALUE_BYTES {
                return exceeded(
                    format!(
                        "label `{name}` of metric `{}` has a {}-byte value",
                        call.name,
                        value.len()
                    ),
                    MAX_LABEL_VALUE_BYTES as u64,
                );
            }
        }
        if self.usage.metric_samples >= MAX_METRIC_SAMPLES {
            return exceeded(
                format!("the plugin emitted more than {MAX_METRIC_SAMPLES} metric samples"),
                MAX_METRIC_SAMPLES,
            );
        }
        let series = series_key(call);
        let new_series = !self.series.contains(&series);
        if new_series && self.series.len() >= MAX_METRIC_SERIES {
            return exceeded(
                format!(
                    "the plugin emitted more than {MAX_METRIC_SERIES} distinct metric series \
                     (name and label set)"
                ),
                MAX_METRIC_SERIES as u64,
            );
        }
        let total = self.usage.metric_bytes.saturating_add(metric_cost(call));
        if total > MAX_METRIC_BYTES {
            return exceeded(
                format!("the plugin's metric samples would take {total} bytes"),
                MAX_METRIC_BYTES,
            );
        }
        if new_series {
            self.series.insert(series);
        }
        self.usage.metric_samples += 1;
        self.usage.metric_series = self.series.len() as u64;
        self.usage.metric_bytes = total;
        Ok(())
    }
}

/// Bytes a log line is charged.
pub fn log_cost(call: LogCall<'_>) -> u64 {
    let fields: u64 = call
        .fields
        .iter()
        .map(|(k, v)| LOG_FIELD_OVERHEAD + *k as u64 + *v as u64)
        .sum();
    LOG_LINE_OVERHEAD + call.message_len as u64 + fields
}

/// Bytes a metric sample is charged.
pub fn metric_cost(call: MetricCall<'_>) -> u64 {
    let labels: u64 = call
        .labels
        .iter()
        .map(|(k, v)| METRIC_LABEL_OVERHEAD + k.len() as u64 + v.len() as u64)
        .sum();
    METRIC_SAMPLE_OVERHEAD + call.name.len() as u64 + labels
}

/// Identity of a series: the name and the label set, in any order.
fn series_key(call: MetricCall<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut labels: Vec<&(&str, &str)> = call.labels.iter().collect();
    labels.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    call.name.hash(&mut hasher);
    labels.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(lines: u64, bytes: u64) -> Budget {
        Budget::new(BudgetLimits {
            log_lines: lines,
            log_bytes: bytes,
            capture_bytes: bytes,
        })
    }

    #[test]
    fn an_empty_log_line_is_not_free() {
        let mut b = budget(1000, 10 * LOG_LINE_OVERHEAD);
        let empty = LogCall {
            message_len: 0,
            fields: &[],
        };
        for _ in 0..10 {
            b.charge_log(empty).unwrap();
        }
        assert!(matches!(
            b.charge_log(empty),
            Err(BudgetExceeded::Log { limit, .. }) if limit == 10 * LOG_LINE_OVERHEAD
        ));
        assert_eq!(b.usage().log_lines, 10);
        assert_eq!(b.usage().log_bytes, 10 * LOG_LINE_OVERHEAD);
    }

    #[test]
    fn log_lines_fields_and_bytes_are_each_capped() {
        let mut b = budget(2, 1 << 20);
        let fields = [(3, 4); 2];
        let line = LogCall {
            message_len: 10,
            fields: &fields,
        };
        b.charge_log(line).unwrap();
        assert_eq!(
            b.usage().log_bytes,
            LOG_LINE_OVERHEAD + 10 + 2 * (LOG_FIELD_OVERHEAD + 7)
        );
        b.charge_log(line).unwrap();
        let third = b.charge_log(line).unwrap_err();
        assert!(
            matches!(third, BudgetExceeded::Log { limit: 2, .. }),
            "{third}"
        );

        let mut b = budget(100, 1 << 20);
        let many = vec![(1, 1); MAX_LOG_FIELDS + 1];
        let err = b
            .charge_log(LogCall {
                message_len: 0,
                fields: &many,
            })
            .unwrap_err();
        assert!(err.to_string().contains("structured fields"), "{err}");
        assert_eq!(b.usage().log_lines, 0, "a refused line is not charged");
    }

    #[test]
    fn metric_series_samples_and_label_sizes_are_capped() {
        let mut b = budget(1, 1);
        for i in 0..MAX_METRIC_SERIES {
            let value = i.to_string();
            b.charge_metric(MetricCall {
                name: "m",
                labels: &[("i", value.as_str())],
            })
            .unwrap();
        }
        // The same series again is fine; a new one is not.
        b.charge_metric(MetricCall {
            name: "m",
            labels: &[("i", "0")],
        })
        .unwrap();
        let err = b
            .charge_metric(MetricCall {
                name: "m",
                labels: &[("i", "new")],
            })
            .unwrap_err();
        assert!(err.to_string().contains("distinct metric series"), "{err}");

        let mut b = budget(1, 1);
        let long = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        assert!(
            b.charge_metric(MetricCall {
                name: "m",
                labels: &[("k", long.as_str())],
            })
            .is_err()
        );
        assert!(
            b.charge_metric(MetricCall {
                name: "",
                labels: &[]
            })
            .is_err()
        );
        let labels = vec![("k", "v"); MAX_METRIC_LABELS + 1];
        assert!(
            b.charge_metric(MetricCall {
                name: "m",
                labels: &labels,
            })
            .is_err()
        );
        assert_eq!(b.usage(), BudgetUsage::default());
    }

    #[test]
    fn label_order_does_not_make_a_new_series() {
        let mut b = budget(1, 1);
        b.charge_metric(MetricCall {
            name: "m",
            labels: &[("a", "1"), ("b", "2")],
        })
        .unwrap();
        b.charge_metric(MetricCall {
            name: "m",
            labels: &[("b", "2"), ("a", "1")],
        })
        .unwrap();
        assert_eq!(b.usage().metric_series, 1);
        assert_eq!(b.usage().metric_samples, 2);
    }
}
