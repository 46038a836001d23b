#!/usr/bin/env bash
# Time from `ferry vm start` to the guest's first health answer, against plain QEMU booting the same
# guest with the same machine, accelerator, disk and network (the floor any manager can reach).
# Usage: bench/vm-start/run.sh [ROUNDS]   (default 5). Prints a table and the ratio; see bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rounds=${1:-5}

scripts/install-deps.sh
guest=$(bash guest/build.sh)
./ferry --help >/dev/null

work=$(mktemp -d /tmp/ferry-bench-XXXXXX)
agent_pid=
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill -9 "$qemu_pid" 2>/dev/null || true
  if [ -f "$work/data/vms/bench/qemu.pid" ]; then kill -9 "$(cat "$work/data/vms/bench/qemu.pid")" 2>/dev/null || true; fi
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

api_port=$(shuf -i 20000-29999 -n 1)
http_port=$((api_port + 1))
export FERRY_SERVER=http://127.0.0.1:$api_port
ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_health() {
  until curl -fs --max-time 1 "http://127.0.0.1:$http_port/counter" >/dev/null; do sleep 0.02; done
}

./ferry agent --data "$work/data" --listen "$FERRY_SERVER" >"$work/agent.log" 2>&1 &
agent_pid=$!
until curl -fs "$FERRY_SERVER/api/v1/health" >/dev/null; do sleep 0.1; done
truncate -s 64M "$work/disk.raw"
./ferry vm create bench --memory 256M --disk "$work/disk.raw" --kernel "$guest/vmlinuz" \
  --initrd "$guest/initrd.img" --append "$(cat "$guest/cmdline")" --forward "$http_port:80" >/dev/null
# A first start outside the measurement: it also probes the accelerator once.
./ferry vm start bench >/dev/null; wait_health; ./ferry vm stop bench --force >/dev/null
accel=$(./ferry vm start bench -o json | sed -n 's/.*"accelerator": "\([a-z]*\)".*/\1/p')
./ferry vm stop bench --force >/dev/null

ferry_times=()
for _ in $(seq "$rounds"); do
  t0=$(ms); ./ferry vm start bench >/dev/null; wait_health; t1=$(ms)
  ferry_times+=($((t1 - t0)))
  ./ferry vm stop bench --force >/dev/null
done

machine="q35,accel=$accel"; cpu=$([ "$accel" = kvm ] && echo host || echo max)
qemu_times=()
for _ in $(seq "$rounds"); do
  t0=$(ms)
  qemu-system-x86_64 -machine "$machine" -cpu "$cpu" -smp 1 -m 256M -nodefaults -no-user-config -display none \
    -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" -append "$(cat "$guest/cmdline")" \
    -blockdev "driver=file,node-name=f,filename=$work/disk.raw" -blockdev driver=raw,node-name=d,file=f \
    -device virtio-blk-pci,drive=d -netdev "user,id=n,hostfwd=tcp:127.0.0.1:$http_port-:80" \
    -device virtio-net-pci,netdev=n -serial "file:$work/serial.log" &
  qemu_pid=$!
  wait_health; t1=$(ms)
  qemu_times+=($((t1 - t0)))
  kill -9 "$qemu_pid"; wait "$qemu_pid" 2>/dev/null || true; qemu_pid=
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
f=$(median "${ferry_times[@]}"); q=$(median "${qemu_times[@]}")
echo "accelerator: $accel, rounds: $rounds"
printf '%-44s %10s %s\n' "start to first health answer" "median ms" "all ms"
printf '%-44s %10s %s\n' "ferry vm start (CLI -> agent -> QEMU)" "$f" "${ferry_times[*]}"
printf '%-44s %10s %s\n' "plain qemu-system-x86_64 (same guest)" "$q" "${qemu_times[*]}"
awk -v f="$f" -v q="$q" 'BEGIN { printf "ratio plain/ferry: %.2f (1.00 = no overhead)\n", q / f }'
