#!/usr/bin/env bash
# Installs schemathesis (PyPI) into a virtual environment under $HOME/.cache/secflow-tools and
# prints the path of its `st` command. Python comes from Debian when the machine has none.
# The test suite runs it against a live `secflow serve` (crates/secflow-server/tests/schemathesis.rs).
set -euo pipefail

TOOLS="${SECFLOW_TOOLS_DIR:-$HOME/.cache/secflow-tools}"
VERSION="4.32.5"
VENV="$TOOLS/schemathesis"
BIN="$VENV/bin/st"

installed=""
if [ -x "$BIN" ]; then
    installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)"
fi
if [ "$installed" != "$VERSION" ]; then
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo "installing python3 and venv (Debian) for schemathesis" >&2
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >&2
    fi
    mkdir -p "$TOOLS"
    rm -rf "$VENV"
    echo "installing schemathesis $VERSION into $VENV" >&2
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
fi
echo "$BIN"
