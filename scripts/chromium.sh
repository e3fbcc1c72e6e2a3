#!/usr/bin/env bash
# Installs Chromium (Debian) when the machine has none and prints the path of its binary.
# The test suite loads the marketplace's web pages in it headless (no console errors, key
# content present, a screenshot at 1280 px): crates/secflow-server/tests/web.rs.
set -euo pipefail

for candidate in chromium chromium-browser; do
    if command -v "$candidate" >/dev/null 2>&1; then
        command -v "$candidate"
        exit 0
    fi
done
echo "installing chromium (Debian) for the web page tests" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
command -v chromium
