//! The data processor from the SecFlow specification: an action plugin over lists of numbers.
//!
//! Actions take `{"data": [numbers], "operation": ..., ...}`:
//! - `transform`: `multiply` / `add` / `power` each value by `factor` (`value` is an alias);
//! - `filter`: keep values `greater` / `less` / `equal` to `threshold`;
//! - `aggregate`: `sum` / `avg` / `min` / `max`;
//! - `normalize`: rescale to 0..1 (min-max); a constant list becomes all zeros.

use secflow_pdk::prelude::*;

pub struct DataProcessor;

impl Plugin for DataProcessor {}

impl Action for DataProcessor {
    fn actions() -> Vec<ActionInfo> {
        vec![
            action(
                "transform",
                "Apply multiply, add or power with `factor` to every value",
                &[
                    ("data", "number[]", true),
                    ("operation", "string", true),
                    ("factor", "number", true),
                ],
            ),
            action(
                "filter",
                "Keep values greater than, less than or equal to `threshold`",
                &[
                    ("data", "number[]", true),
                    ("operation", "string", true),
                    ("threshold", "number", true),
                ],
            ),
            action(
                "aggregate",
                "Sum, average, minimum or maximum of the values",
                &[("data", "number[]", true), ("operation", "string", true)],
            ),
            action(
                "normalize",
                "Rescale values to the range 0..1",
                &[("data", "number[]", true)],
            ),
        ]
    }

    fn execute(name: &str, params: Value) -> Result<Value, PluginError> {
        process(name, &params)
    }
}

/// The plugin's logic, callable natively in unit tests.
pub fn process(name: &str, params: &Value) -> Result<Value, PluginError> {
    let data = numbers(params)?;
    let operation = params.get("operation").and_then(Value::as_str);
    let number = |key: &str| -> Result<f64, PluginError> {
        params
            .get(key)
            .or_else(|| params.get("value"))
            .and_then(Value::as_f64)
            .ok_or_else(|| invalid_input(format!("`{key}` must be a number")))
    };
    let need_op = || invalid_input(format!("`operation` is required for `{name}`"));
    let out = match name {
        "transform" => {
            let factor = number("factor")?;
            let f: fn(f64, f64) -> f64 = match operation.ok_or_else(need_op)? {
                "multiply" => |x, k| x * k,
                "add" => |x, k| x + k,
                "power" => f64::powf,
                other => return Err(unknown_op(other, "multiply, add, power")),
            };
            json!(data.iter().map(|&x| num(f(x, factor))).collect::<Vec<_>>())
        }
        "filter" => {
            let threshold = number("threshold")?;
            let keep: fn(f64, f64) -> bool = match operation.ok_or_else(need_op)? {
                "greater" => |x, t| x > t,
                "less" => |x, t| x < t,
                "equal" => |x, t| x == t,
                other => return Err(unknown_op(other, "greater, less, equal")),
            };
            json!(
                data.iter()
                    .filter(|&&x| keep(x, threshold))
                    .map(|&x| num(x))
                    .collect::<Vec<_>>()
            )
        }
        "aggregate" => {
            if data.is_empty() {
                return Err(invalid_input("`data` must not be empty for `aggregate`"));
            }
            let value = match operation.ok_or_else(need_op)? {
                "sum" => data.iter().sum(),
                "avg" => data.iter().sum::<f64>() / data.len() as f64,
                "min" => data.iter().copied().fold(f64::INFINITY, f64::min),
                "max" => data.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                other => return Err(unknown_op(other, "sum, avg, min, max")),
            };
            num(value)
        }
        "normalize" => {
            let min = data.iter().copied().fold(f64::INFINITY, f64::min);
            let max = data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let span = max - min;
            json!(
                data.iter()
                    .map(|&x| num(if span > 0.0 { (x - min) / span } else { 0.0 }))
                    .collect::<Vec<_>>()
            )
        }
        other => {
            return Err(invalid_input(format!(
                "unknown action `{other}`; expected transform, filter, aggregate or normalize"
            )));
        }
    };
    Ok(out)
}

fn numbers(params: &Value) -> Result<Vec<f64>, PluginError> {
    let items = params
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_input("`data` must be an array of numbers"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_f64()
                .ok_or_else(|| invalid_input(format!("`data[{i}]` is not a number")))
        })
        .collect()
}

fn unknown_op(op: &str, expected: &str) -> PluginError {
    invalid_input(format!(
        "unknown operation `{op}`; expected one of: {expected}"
    ))
}

/// Integral results print as integers (`6`, not `6.0`); non-finite ones are refused by JSON
/// and become `null`.
fn num(x: f64) -> Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

secflow_pdk::export_action!(DataProcessor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_filter_aggregate_normalize() {
        let p = json!({"data": [1, 2, 3], "operation": "multiply", "factor": 2});
        assert_eq!(process("transform", &p).unwrap(), json!([2, 4, 6]));
        let p = json!({"data": [1, 2, 3], "operation": "power", "factor": 2});
        assert_eq!(process("transform", &p).unwrap(), json!([1, 4, 9]));
        let p = json!({"data": [1, 5, 3], "operation": "greater", "threshold": 2});
        assert_eq!(process("filter", &p).unwrap(), json!([5, 3]));
        let p = json!({"data": [1, 2, 3, 4], "operation": "avg"});
        assert_eq!(process("aggregate", &p).unwrap(), json!(2.5));
        let p = json!({"data": [2, 4, 6]});
        assert_eq!(process("normalize", &p).unwrap(), json!([0, 0.5, 1]));
    }

    #[test]
    fn bad_input_is_named() {
        let e = process(
            "transform",
            &json!({"data": [1, "x"], "operation": "add", "factor": 1}),
        );
        assert!(matches!(e, Err(PluginError::InvalidInput(m)) if m.contains("data[1]")));
    }
}
