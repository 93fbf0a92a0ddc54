#!/bin/sh
# Installs Debian's headless-capable `chromium` for tests/browser.rs when it is missing.
# Exits 0 when a chromium binary is available afterwards, non-zero otherwise (e.g. no network).
set -u
for b in chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then
        echo "install-chromium: $(command -v "$b") already present"
        exit 0
    fi
done
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "install-chromium: not root and no sudo; cannot install chromium" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || { echo "install-chromium: apt-get update failed (no network?)" >&2; exit 1; }
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core \
    || { echo "install-chromium: apt-get install chromium failed" >&2; exit 1; }
command -v chromium >/dev/null 2>&1
