#!/usr/bin/env bash
# How fast a failed host's VM runs again elsewhere: a 3-host lab (network namespaces, real agents), the
# test guest on a volume with copies on two hosts, then kill -9 of every process of the guest's host
# (agent, watchdog, QEMU), and the time until the guest's first health answer on the other host, as a
# client outside the hosts sees it (curl every 50 ms). The cluster's events split it into detection
# (host-failed), fencing (fence-host), promotion (promote-copy), start (vm-started) and boot (the first
# answer). Two cases, ROUNDS times each, a fresh lab per round:
#   member: the guest on h2, the leader h1 stays;  leader: the guest on h1, the leader's own host dies.
# Default timings: lease renewal 0.5 s, lease 3 s, margin 1 s. Needs root.
# Usage: bench/failover/run.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ "$(id -u)" -eq 0 ] || exec sudo env "PATH=$PATH" "$0" "$@"
rounds=${1:-5}

command -v jq >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null
scripts/install-deps.sh >/dev/null
guest=$(bash guest/build.sh)
./ferry --help >/dev/null
ferry=(dotnet artifacts/ferry/ferry.dll)

export FERRY_LAB="fo$$"
work=$(mktemp -d /tmp/ferry-bench-failover-XXXXXX)
cleanup() { "${ferry[@]}" lab down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }
addr() { "${ferry[@]}" lab status -o json | jq -r ".hosts[] | select(.name == \"$1\") | .address"; }
# The time of the last event of a kind (about a subject) in the cluster's log, in ms since the epoch.
event_ms() {
  "${ferry[@]}" --server "$1" cluster events -o json |
    jq -r --arg k "$2" --arg m "$3" '[.[] | select(.kind == $k and (.message | startswith($m)))][-1].at // empty' |
    xargs -I{} date -d {} +%s%3N
}

# One round: CASE is member or leader; prints "total detection fencing promotion start boot" in ms.
round() {
  local case=$1 on to
  if [ "$case" = member ]; then on=h2; to=h3; else on=h1; to=h2; fi
  "${ferry[@]}" lab up --nodes 3 --dir "$work/lab" >/dev/null
  local h1 survivor ask
  h1=$(addr h1); survivor=$(addr "$to"); ask="http://$survivor:7480"
  "${ferry[@]}" --server "http://$h1:7480" volume create disk --size 64M --host "$on,$to" >/dev/null
  "${ferry[@]}" --server "http://$h1:7480" vm create g --memory 256M --disk volume:disk \
    --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --append "$(cat "$guest/cmdline")" \
    --forward "0.0.0.0:8080:80" --health-check http://127.0.0.1:8080/health >/dev/null
  local placed
  placed=$("${ferry[@]}" --server "http://$h1:7480" vm start g -o json | jq -r .host)
  [ "$placed" = "$on" ] || { echo "the guest was placed on $placed, not $on" >&2; exit 1; }
  until curl -fs --max-time 1 "http://$(addr "$on"):8080/health" >/dev/null; do sleep 0.2; done
  sleep 3 # a few renewals and guest writes under way: the kill falls anywhere in a renewal period

  local killed answered
  killed=$(now_ms)
  "${ferry[@]}" lab kill "$on" >/dev/null
  until curl -fs --max-time 0.5 "http://$survivor:8080/health" >/dev/null; do sleep 0.05; done
  answered=$(now_ms)

  local failed fenced promoted started
  failed=$(event_ms "$ask" host-failed "host $on failed")
  fenced=$(event_ms "$ask" fence-host "host $on fenced")
  promoted=$(event_ms "$ask" promote-copy "copy of disk on $to promoted")
  started=$(event_ms "$ask" vm-started "VM g started on $to")
  echo "$((answered - killed)) $((failed - killed)) $((fenced - failed)) $((promoted - fenced)) $((started - promoted)) $((answered - started))"
  "${ferry[@]}" lab down >/dev/null
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for case in member leader; do
  : >"$work/$case"
  for r in $(seq "$rounds"); do
    line=$(round "$case")
    echo "$case round $r: total detection fencing promotion start boot (ms): $line" >&2
    echo "$line" >>"$work/$case"
  done
done

echo
echo "| host killed | kill -> first health answer elsewhere (median; all) | detection | fencing | promotion | start | boot | vs Proxmox VE (~120 s) |"
echo "|---|---|---|---|---|---|---|---|"
for case in member leader; do
  col() { cut -d' ' -f"$1" "$work/$case" | median; }
  total=$(col 1)
  all=$(cut -d' ' -f1 "$work/$case" | sort -n | paste -sd, | sed 's/,/, /g')
  label=$([ "$case" = member ] && echo "a member (the leader survives)" || echo "the leader's own host")
  echo "| $label | $total ms ($all) | $(col 2) | $(col 3) | $(col 4) | $(col 5) | $(col 6) | $(awk -v t="$total" 'BEGIN { printf "%.0fx", 120000 / t }') |"
done
