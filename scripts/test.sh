#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, builds (the benchmarks too, so that they
# keep compiling), and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build --build-tests
(cd Benchmarks && swift build)
swift test
