#!/usr/bin/env bash
# Runs every test: installs what they need, builds the test guest, runs the unit and integration tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
bash guest/build.sh >/dev/null

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

status=0
dotnet test Ferry.slnx -c Release --logger "trx" --results-directory "$results" "$@" || status=$?

# One closing line for any reader: the totals over all test assemblies.
passed=0 failed=0 skipped=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx")
  get() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed)))
  skipped=$((skipped + $(get notExecuted)))
done
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$passed" -eq 0 ] && [ "$status" -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit "$status"
