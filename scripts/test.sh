#!/bin/bash
# Keel's whole test suite: installs what it needs, then lint, unit, CLI, interop and VM tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
export CARGO_TERM_COLOR=never

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo test --workspace --locked --no-fail-fast

echo "== VM tests: compose the default OS, build its image, boot it (scripts/vmtest.sh)"
bash scripts/vmtest.sh
