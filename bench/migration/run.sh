#!/usr/bin/env bash
# Live migration and drain, Ferry against plain QEMU. Ferry: a 3-host lab (network namespaces, real
# agents), the test guest (256 MiB, TCG) on a volume with copies on h1 and h2, `ferry vm migrate`
# back and forth ROUNDS times; then 4 guests on h1 and `ferry node drain h1` until they all run
# elsewhere. The peer: the same guest in two plain QEMU processes on this machine sharing a raw disk
# file, migrated back and forth over loopback with the same downtime limit and bandwidth, by QMP
# alone (no replication, no cluster). For each migration: QEMU's own downtime, the total time (as the
# command sees it for Ferry, QEMU's total-time for the peer), and the longest pause of the guest's
# counter as a client outside polls it every 10 ms (the guest counts about every 100 ms).
# Needs root. Usage: bench/migration/run.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ "$(id -u)" -eq 0 ] || exec sudo env "PATH=$PATH" "$0" "$@"
rounds=${1:-5}

command -v jq >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null
scripts/install-deps.sh >/dev/null
guest=$(bash guest/build.sh)
./ferry --help >/dev/null
ferry=(dotnet artifacts/ferry/ferry.dll)
bench=bench/migration

export FERRY_LAB="mi$$"
work=$(mktemp -d /tmp/ferry-bench-migration-XXXXXX)
qemus=()
cleanup() {
  for pid in "${qemus[@]}"; do kill "$pid" 2>/dev/null || true; done
  "${ferry[@]}" lab down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }
addr() { "${ferry[@]}" lab status -o json | jq -r ".hosts[] | select(.name == \"$1\") | .address"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
all() { sort -n | paste -sd, | sed 's/,/, /g'; }

"${ferry[@]}" lab up --nodes 3 --dir "$work/lab" >/dev/null
h1=$(addr h1); h2=$(addr h2); h3=$(addr h3)
api="http://$h1:7480"
cli=("${ferry[@]}" --server "$api")
create() { # NAME VOLUME HOSTS PORT
  "${cli[@]}" volume create "$2" --size 64M --host "$3" >/dev/null
  "${cli[@]}" vm create "$1" --memory 256M --disk "volume:$2" --prefer h1 \
    --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --append "$(cat "$guest/cmdline")" \
    --forward "0.0.0.0:$4:80" --health-check "http://127.0.0.1:$4/health" >/dev/null
  "${cli[@]}" vm start "$1" >/dev/null
}

# --- Ferry: one guest migrated back and forth --------------------------------------------------------
create g disk h1,h2 8080
until curl -fs --max-time 1 "http://$h1:8080/health" >/dev/null; do sleep 0.2; done
until "${cli[@]}" volume show disk -o json | jq -e '[.copies[] | select(.disk == "up-to-date" and .connection == "connected")] | length == 2' >/dev/null; do sleep 0.5; done
# The floor: the longest counter pause in the same window with no migration.
python3 "$bench/gap.py" "$h1:8080" >"$work/gap" & poller=$!
sleep 4
kill -TERM "$poller"; wait "$poller" || true
read -r quiet _ <"$work/gap"
echo "ferry, no migration: longest counter pause $quiet ms" >&2
: >"$work/ferry"
to=h2
for r in $(seq "$rounds"); do
  sleep 2
  python3 "$bench/gap.py" "$h1:8080" "$h2:8080" >"$work/gap" & poller=$!
  sleep 1
  started=$(now_ms)
  shown=$("${cli[@]}" vm migrate g --to "$to" -o json)
  took=$(($(now_ms) - started))
  sleep 1
  kill -TERM "$poller"; wait "$poller" || true
  ms() { jq -r ".lastMigration.$1" <<<"$shown" | awk -F: '{printf "%.0f", ($1 * 3600 + $2 * 60 + $3) * 1000}'; }
  downtime=$(ms downtime); resumed=$(ms resumedAfter)
  read -r gap order <"$work/gap"
  [ "$order" = ok ] || { echo "the counter went back during round $r" >&2; exit 1; }
  echo "ferry round $r (to $to): downtime $downtime ms, running again after $resumed ms, total $took ms, longest counter pause $gap ms" >&2
  echo "$downtime $took $gap $resumed" >>"$work/ferry"
  to=$([ "$to" = h2 ] && echo h1 || echo h2)
done
"${cli[@]}" vm stop g >/dev/null

# --- Ferry: drain a host running 4 guests ------------------------------------------------------------
for i in 1 2 3 4; do
  other=$([ $((i % 2)) -eq 0 ] && echo h2 || echo h3)
  create "d$i" "dd$i" "h1,$other" $((8080 + i))
done
for i in 1 2 3 4; do until curl -fs --max-time 1 "http://$h1:$((8080 + i))/health" >/dev/null; do sleep 0.2; done; done
until "${cli[@]}" volume list -o json | jq -e '[.[] | select(.name | startswith("dd")) | .copies[] | select(.disk == "up-to-date" and .connection == "connected")] | length == 8' >/dev/null; do sleep 0.5; done
started=$(now_ms)
"${ferry[@]}" --server "http://$h3:7480" node drain h1 >/dev/null 2>"$work/drain"
drain=$(($(now_ms) - started))
echo "ferry drain of 4 VMs: $drain ms ($(tail -1 "$work/drain"))" >&2
"${ferry[@]}" lab down >/dev/null

# --- The peer: plain QEMU, the same guest, a shared raw disk, loopback ------------------------------
truncate -s 64M "$work/plain.raw"
plain() { # SIDE PORT [INCOMING]
  qemu-system-x86_64 -name "guest=plain-$1" -machine q35,accel=tcg -cpu max -m 256M -nodefaults -no-user-config -display none \
    -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" -append "$(cat "$guest/cmdline")" \
    -drive "file=$work/plain.raw,format=raw,if=virtio,file.locking=off" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$2-:80" -device virtio-net-pci,netdev=n0 \
    -qmp "unix:$work/$1.qmp,server=on,wait=off" -daemonize -pidfile "$work/$1.pid" ${3:+-S -incoming defer}
  qemus+=("$(cat "$work/$1.pid")")
}
plain a 18080
until curl -fs --max-time 1 "http://127.0.0.1:18080/health" >/dev/null; do sleep 0.2; done
: >"$work/plain"
from=a; port=18080
for r in $(seq "$rounds"); do
  to=$([ "$from" = a ] && echo b || echo a); toport=$([ "$port" = 18080 ] && echo 18081 || echo 18080)
  plain "$to" "$toport" incoming
  sleep 2
  python3 "$bench/gap.py" "127.0.0.1:$port" "127.0.0.1:$toport" >"$work/gap" & poller=$!
  sleep 1
  read -r downtime total < <(python3 "$bench/qmp.py" "$work/$from.qmp" "$work/$to.qmp" "tcp:127.0.0.1:4444" 100)
  sleep 1
  kill -TERM "$poller"; wait "$poller" || true
  read -r gap order <"$work/gap"
  echo "plain QEMU round $r: downtime $downtime ms, total $total ms, longest counter pause $gap ms" >&2
  echo "$downtime $total $gap" >>"$work/plain"
  from=$to; port=$toport
done

col() { cut -d' ' -f"$2" "$work/$1" | median; }
cols() { cut -d' ' -f"$2" "$work/$1" | all; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "| live migration, 256 MiB guest (median of $rounds; all) | Ferry (\`vm migrate\`, replicated disk, cluster) | plain QEMU (QMP, shared file) | Ferry / plain |"
echo "|---|---|---|---|"
echo "| downtime, QEMU's own | $(col ferry 1) ms ($(cols ferry 1)) | $(col plain 1) ms ($(cols plain 1)) | $(ratio "$(col ferry 1)" "$(col plain 1)") |"
echo "| switch-over to the target's answer that it runs (Ferry's measure) | $(col ferry 4) ms ($(cols ferry 4)) | | |"
echo "| longest pause of the guest's counter (without a migration: $quiet ms) | $(col ferry 3) ms ($(cols ferry 3)) | $(col plain 3) ms ($(cols plain 3)) | $(ratio "$(col ferry 3)" "$(col plain 3)") |"
echo "| total time | $(col ferry 2) ms ($(cols ferry 2)) | $(col plain 2) ms ($(cols plain 2)) | $(ratio "$(col ferry 2)" "$(col plain 2)") |"
echo
echo "| drain | Ferry |"
echo "|---|---|"
echo "| \`node drain\` of a host running 4 guests, until all run elsewhere | $drain ms |"
