#!/usr/bin/env bash
# The whole test suite: installs what it needs when missing, then formatting, lints and
# every test (unit, integration against real pcscd, slapd, HTTP, SQLite, systemd tools,
# the headless demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "installing cargo-deb (builds the Debian package in the deployment tests)" >&2
  cargo install cargo-deb --locked --quiet
fi
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet
