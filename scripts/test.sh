#!/usr/bin/env bash
# The project's test command (README "Run the tests"): install what is missing, then run every
# test. Benchmarks are not tests and are not run here (see README "Benchmarks").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --locked "$@"
