#!/usr/bin/env bash
# Installs @microsoft/sarif-multitool (npm; a self-contained binary, no .NET needed) under
# $HOME/.cache/secflow-tools and prints the path of its binary. Node and npm come from
# Debian when the machine has none. The test suite validates SecFlow's SARIF with it
# (GitHub's rules and the SARIF spec's).
set -euo pipefail

TOOLS="${SECFLOW_TOOLS_DIR:-$HOME/.cache/secflow-tools}"
VERSION="5.7.0"
BIN="$TOOLS/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"

installed=""
if [ -x "$BIN" ]; then
    installed="$("$BIN" --version 2>&1 || true)"
fi
if [[ "$installed" != "SARIF Multitool $VERSION"* ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "installing node and npm (Debian) for sarif-multitool" >&2
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >&2
    fi
    mkdir -p "$TOOLS"
    echo "installing @microsoft/sarif-multitool@$VERSION into $TOOLS" >&2
    npm install --no-audit --no-fund --silent --prefix "$TOOLS" "@microsoft/sarif-multitool@$VERSION" >&2
    # npm may skip the package's postinstall (which only marks the binary executable).
    chmod u+x "$BIN"
fi
echo "$BIN"
