#!/usr/bin/env bash
# A long run of the random fault test: ROUNDS rounds (default 30) of random faults in a 3-host lab,
# with a seed (default: random, printed) that replays the same run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export FERRY_FAULT_ROUNDS=${1:-30}
export FERRY_FAULT_SEED=${2:-$RANDOM}
echo "soak: $FERRY_FAULT_ROUNDS rounds, seed $FERRY_FAULT_SEED"
scripts/test.sh --filter "FullyQualifiedName~RandomFaultTests" --logger "console;verbosity=detailed"
