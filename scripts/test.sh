#!/usr/bin/env bash
# Runs the whole test suite exactly as CI does, on a fresh machine or a warm one.
# It installs what the build needs (the wasm32-wasip2 target) and reuses a target directory
# outside the clone, so wasmtime is not rebuilt on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/secflow-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

rustup target add wasm32-wasip2
rustup component add rustfmt clippy 2>/dev/null || true

# SARIF is checked against GitHub's rules with Microsoft's validator (tests/sarif_github.rs).
SECFLOW_SARIF_MULTITOOL="$(bash scripts/sarif-multitool.sh)"
export SECFLOW_SARIF_MULTITOOL
# The REST API is fuzzed against its OpenAPI document (crates/secflow-server/tests/schemathesis.rs).
SECFLOW_SCHEMATHESIS="$(bash scripts/schemathesis.sh)"
export SECFLOW_SCHEMATHESIS
# The marketplace's web pages are loaded in headless Chromium (crates/secflow-server/tests/web.rs).
SECFLOW_CHROMIUM="$(bash scripts/chromium.sh)"
export SECFLOW_CHROMIUM

echo "== format"
cargo fmt --all -- --check
(cd plugins && cargo fmt --all -- --check)

echo "== lint (host)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== lint (guest plugins and SDK, wasm32-wasip2)"
(cd plugins && cargo clippy --workspace --target wasm32-wasip2 --locked -- -D warnings)

echo "== test (host)"
# --no-fail-fast: a red run reports every failing test binary, not only the first
cargo test --workspace --locked --no-fail-fast

echo "== test (plugin logic, natively)"
(cd plugins && cargo test --locked --target-dir "$CARGO_TARGET_DIR/plugins-native" \
    -p cvss-enricher -p cwe-enricher -p data-processor -p kev-epss-enricher \
    -p nvd-enricher -p pii-redactor -p prompt-guard -p secret-guard -p ssh-log-analyzer \
    -p summary-analytics)
