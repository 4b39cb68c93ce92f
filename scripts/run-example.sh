#!/usr/bin/env bash
# Runs the example agent on the embedded SQLite default (./agent-checkpoints.db).
# Run it again and the agent continues from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift run example-agent "$@"
