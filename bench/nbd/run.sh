#!/usr/bin/env bash
# fio's nbd engine against Ferry's NBD server and against qemu-nbd, each serving the same kind of
# sparse raw file from the same file system, in one run; plus fio directly on a file as the ceiling.
# Usage: bench/nbd/run.sh [SECONDS_PER_JOB]   (default 10). Prints a table with ratios.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runtime=${1:-10}
size=512M

scripts/install-deps.sh
command -v jq >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null
./ferry --help >/dev/null

work=$(mktemp -d /tmp/ferry-bench-nbd-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

api_port=$(shuf -i 20000-29999 -n 1)
export FERRY_SERVER=http://127.0.0.1:$api_port
./ferry agent --data "$work/ferry" --listen "$FERRY_SERVER" >"$work/agent.log" 2>&1 &
pids+=($!)
until curl -fs "$FERRY_SERVER/api/v1/health" >/dev/null; do sleep 0.1; done
./ferry volume create bench --size "$size" >/dev/null
ferry_uri="nbd+unix:///bench?socket=$work/ferry/nbd.sock"

truncate -s "$size" "$work/qemu-nbd.raw"
qemu-nbd --format=raw --export-name=bench --socket="$work/qemu-nbd.sock" --shared=8 --persistent "$work/qemu-nbd.raw" &
pids+=($!)
until [ -S "$work/qemu-nbd.sock" ]; do sleep 0.1; done
qemu_uri="nbd+unix:///bench?socket=$work/qemu-nbd.sock"

truncate -s "$size" "$work/direct.raw"

# name rw bs iodepth
jobs=(
  "4k random read QD32|randread|4k|32"
  "4k random write QD32|randwrite|4k|32"
  "4k random write QD1|randwrite|4k|1"
  "1M sequential read|read|1M|8"
  "1M sequential write|write|1M|8"
)

# fio's nbd engine prints a line of its own on stdout, so the JSON goes through a file.
fio_json() { fio --output-format=json --output="$work/fio.json" --name=j "$@" >/dev/null && cat "$work/fio.json"; }
fio_nbd() { fio_json --ioengine=nbd --uri="$1" --rw="$2" --bs="$3" --iodepth="$4" --size="$size" --time_based --runtime="$runtime"; }
fio_file() { fio_json --ioengine=psync --filename="$1" --rw="$2" --bs="$3" --size="$size" --time_based --runtime="$runtime"; }
# IOPS for 4k jobs, MiB/s for 1M jobs, mean total latency (submission to completion) in microseconds.
metric() { jq -r --arg k "$1" '.jobs[0] | (if .read.io_bytes > 0 then .read else .write end) | if $k == "bw" then .bw / 1024 elif $k == "lat" then .lat_ns.mean / 1000 else .iops end'; }

# Fill every target first, so that reads read data and not holes.
for uri in "$ferry_uri" "$qemu_uri"; do fio_nbd "$uri" write 1M 8 | jq -e '.jobs[0].error == 0' >/dev/null; done
dd if=/dev/urandom of="$work/direct.raw" bs=1M count=512 status=none

printf '%-22s %12s %12s %12s %10s %10s\n' "job" "ferry" "qemu-nbd" "file" "f/q-nbd" "f/file"
for job in "${jobs[@]}"; do
  IFS='|' read -r name rw bs qd <<<"$job"
  key=iops; unit="IOPS"
  [ "$bs" = 1M ] && { key=bw; unit="MiB/s"; }
  f=$(fio_nbd "$ferry_uri" "$rw" "$bs" "$qd" | metric $key)
  q=$(fio_nbd "$qemu_uri" "$rw" "$bs" "$qd" | metric $key)
  d=$(fio_file "$work/direct.raw" "$rw" "$bs" | metric $key)
  awk -v n="$name ($unit)" -v f="$f" -v q="$q" -v d="$d" 'BEGIN { printf "%-22s %12.0f %12.0f %12.0f %10.2f %10.2f\n", n, f, q, d, f / q, f / d }'
  if [ "$qd" = 1 ]; then
    fl=$(fio_nbd "$ferry_uri" "$rw" "$bs" "$qd" | metric lat); ql=$(fio_nbd "$qemu_uri" "$rw" "$bs" "$qd" | metric lat)
    awk -v f="$fl" -v q="$ql" 'BEGIN { printf "%-22s %12.1f %12.1f %12s %10.2f\n", "  mean latency (us)", f, q, "-", q / f }'
  fi
done
echo "(f/q-nbd >= 1.00 means Ferry is at least as fast as qemu-nbd; for latency the ratio is qemu-nbd/ferry)"
