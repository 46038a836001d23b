#!/usr/bin/env bash
# How fast a cluster forms and recovers: three agents on this machine (loopback), driven through the REST
# API with curl so that no CLI start-up is timed.
#  1. forming: cluster init on n1, then a join token and a join for n2 and n3, until all three vote;
#  2. leader loss: kill -9 of the leader's agent until a write (a join token) commits through a survivor,
#     ROUNDS times (the killed agent restarts from its log and rejoins between rounds);
#  3. API latency: READS linearizable status reads on a follower, and WRITES writes through the leader
#     and through a follower (forwarded), p50 and p99;
#  4. (as root) forming from nothing in a lab: `ferry lab up --nodes 3`, hosts in network namespaces,
#     agents started and formed into a cluster, until the command returns with every host voting.
# Usage: bench/cluster/run.sh [ROUNDS] [REQUESTS]   (defaults 5 and 200)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rounds=${1:-5}
requests=${2:-200}

command -v jq >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null
./ferry --help >/dev/null
ferry=(dotnet artifacts/ferry/ferry.dll)

work=$(mktemp -d /tmp/ferry-bench-cluster-XXXXXX)
declare -A pid
lab=""
cleanup() {
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  if [ -n "$lab" ]; then "${ferry[@]}" lab down --lab "$lab" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

base=$(shuf -i 20000-29900 -n 1)
api() { echo "http://127.0.0.1:$((base + $1))"; }       # n1..n3: base+1..3
consensus() { echo "127.0.0.1:$((base + 10 + $1))"; }
peer() { echo "127.0.0.1:$((base + 20 + $1))"; }
now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }

start_agent() {
  "${ferry[@]}" agent --data "$work/n$1" --listen "$(api "$1")" --host-name "n$1" \
    --consensus-listen "$(consensus "$1")" --peer-listen "$(peer "$1")" >>"$work/n$1.log" 2>&1 &
  pid[$1]=$!
  until curl -fs "$(api "$1")/api/v1/health" >/dev/null; do
    kill -0 "${pid[$1]}" 2>/dev/null || { echo "agent n$1 exited:" >&2; cat "$work/n$1.log" >&2; exit 1; }
    sleep 0.05
  done
}
post() { curl -fsS -X POST -H 'content-type: application/json' -d "$2" "$1"; }
token() { post "$(api "$1")/api/v1/cluster/join-tokens" '{}' | jq -r .token; }
status() { curl -fsS "$(api "$1")/api/v1/cluster/status${2:-}"; }
leader() { status "$1" | jq -r '.leader // empty'; }

echo "cluster on 3 agents over loopback: forming, leader loss ($rounds rounds), API latency ($requests requests each)"
for i in 1 2 3; do start_agent "$i"; done

# 1. Forming, from three running agents that are in no cluster.
t0=$(now)
post "$(api 1)/api/v1/cluster/init" '{"name":"bench"}' >/dev/null
for i in 2 3; do
  post "$(api "$i")/api/v1/cluster/join" "{\"address\":\"$(peer 1)\",\"token\":\"$(token 1)\"}" >/dev/null
done
until [ "$(status 1 | jq '[.hosts[] | select(.voting and .health == "reachable")] | length')" = 3 ]; do sleep 0.01; done
t1=$(now)
form_ms=$(ms "$t0" "$t1")

# 2. Leader loss: kill -9 of the leader, then writes through a survivor until one commits.
failover=()
for r in $(seq "$rounds"); do
  l=$(leader 1 || leader 2 || leader 3); l=${l#n}
  survivor=$((l % 3 + 1))
  kill -9 "${pid[$l]}"; wait "${pid[$l]}" 2>/dev/null || true
  t0=$(now)
  until post "$(api "$survivor")/api/v1/cluster/join-tokens" '{}' >/dev/null 2>&1; do :; done
  t1=$(now)
  failover+=("$(ms "$t0" "$t1")")
  start_agent "$l"
  until [ "$(status "$l" "?local=true" | jq -r '.leader // empty')" != "" ]; do sleep 0.05; done
done

# 3. Latency of single requests, one at a time.
percentiles() { sort -n | awk '{ v[NR] = $1 } END { printf "%8.1f %8.1f", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5)] }'; }
timed() { for _ in $(seq "$requests"); do curl -fsS -o /dev/null -w '%{time_total}\n' "$@"; done | awk '{ print $1 * 1000 }'; }
l=$(leader 1); l=${l#n}; f=$((l % 3 + 1))
read_lin=$(timed "$(api "$f")/api/v1/cluster/status?local=true&linearizable=true" | percentiles)
read_local=$(timed "$(api "$f")/api/v1/cluster/status?local=true" | percentiles)
write_leader=$(timed -X POST -H 'content-type: application/json' -d '{}' "$(api "$l")/api/v1/cluster/join-tokens" | percentiles)
write_follower=$(timed -X POST -H 'content-type: application/json' -d '{}' "$(api "$f")/api/v1/cluster/join-tokens" | percentiles)

# 4. From nothing: namespaces, agents and forming, as `ferry lab up` does it.
lab_ms="-"
if [ "$(id -u)" -eq 0 ]; then
  lab="bf$(($$ % 100000))"
  t0=$(now)
  "${ferry[@]}" lab up --nodes 3 --lab "$lab" --dir "$work/lab" >/dev/null 2>"$work/lab.err" || { cat "$work/lab.err" >&2; exit 1; }
  t1=$(now)
  lab_ms=$(ms "$t0" "$t1")
  "${ferry[@]}" lab down --lab "$lab" >/dev/null
  lab=""
fi

echo
printf '%-52s %10s %10s\n' "measure" "ms" "target"
printf '%-52s %10s %10s\n' "form a 3-host cluster (init + 2 joins, all voting)" "$form_ms" "< 10000"
printf '%-52s %10s %10s\n' "lab from nothing: 3 namespaces, agents, cluster" "$lab_ms" "< 10000"
sorted=$(printf '%s\n' "${failover[@]}" | sort -n | tr '\n' ' ')
printf '%-52s %10s %10s\n' "kill -9 leader -> write committed (median of $rounds)" "$(printf '%s\n' "${failover[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')" "< 3000"
echo "  every round (ms): $sorted"
echo
printf '%-52s %8s %8s\n' "API latency, one request at a time" "p50 ms" "p99 ms"
printf '%-52s %s\n' "read: status on a follower, linearizable" "$read_lin"
printf '%-52s %s\n' "read: status on a follower, its own view" "$read_local"
printf '%-52s %s\n' "write: join token through the leader" "$write_leader"
printf '%-52s %s\n' "write: join token through a follower (forwarded)" "$write_follower"
awk -v f="$form_ms" 'BEGIN { printf "forming vs the 100 s of the best documented scripted build: %.0fx faster\n", 100000 / f }'
