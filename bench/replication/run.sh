#!/usr/bin/env bash
# What replication costs: fio's nbd engine against three volumes of one agent (A) in one run, one not
# replicated, one replicated to a second agent (B) with protocol C and one with protocol A, both agents
# on loopback; then a full resync of 1 GiB from A to B against nbdcopy copying the same GiB from A's
# export to a qemu-nbd export.
# Usage: bench/replication/run.sh [SECONDS_PER_JOB] [ROUNDS]   (defaults 10 and 3). Prints a table with
# ratios of medians: each job runs ROUNDS times on each volume, the volumes taking turns.
# FERRY_BENCH_DIR=/dev/shm puts both agents' data in memory, to measure Ferry rather than the disk.
# FERRY_BENCH_JOBS=1M (or 4k, QD1, ...) runs only the jobs whose name contains it; FERRY_BENCH_RESYNC=0
# leaves out the resync.
# FERRY_BENCH_COLD=1 empties the page cache before each job (as well as writing back what is dirty), so
# that no job writes into the large folios a sequential fill or the 1M job left behind.
# FERRY_BENCH_TLS=1 runs the replication links over TLS 1.3 with host certificates, as in a cluster
# (plain TCP otherwise, as between hosts in no cluster).
# FERRY_BENCH_SPLIT=1 gives each host a core of its own, as two machines would have: agent A and
# every client of its exports (fio, nbdcopy) on CPU 0, agent B (and the resync's peer, qemu-nbd) on
# CPU 1. Every job, plain or replicated, then has the primary's one core; replication adds the
# peer's core, as a second machine does. Without it all share both cores, and the peer's file system
# work competes with the primary's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runtime=${1:-10}
rounds=${2:-3}
size=512M
sync_mib=1024

scripts/install-deps.sh
command -v jq >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null
./ferry --help >/dev/null
# The build just made, run directly: ./ferry rebuilds whenever src/ changes, which would land inside a timing.
ferry=(dotnet artifacts/ferry/ferry.dll)
on_cpu_a=() on_cpu_b=()
if [ "${FERRY_BENCH_SPLIT:-0}" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || { echo "FERRY_BENCH_SPLIT=1 needs two cores" >&2; exit 1; }
  on_cpu_a=(taskset -c 0) on_cpu_b=(taskset -c 1)
fi

work=$(mktemp -d "${FERRY_BENCH_DIR:-/tmp}/ferry-bench-replication-XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "fio (nbd engine, ${runtime} s per job, median of $rounds rounds, $size volumes) on agent A: plain vs replicated to agent B with protocol C and A; then a ${sync_mib} MiB resync vs nbdcopy"
[ ${#on_cpu_a[@]} -gt 0 ] && echo "hosts split: agent A and its clients on CPU 0, agent B on CPU 1"

tls=0
if [ "${FERRY_BENCH_TLS:-0}" = 1 ]; then
  tls=1
  echo "replication links over TLS"
  # A certificate authority and a certificate per host naming it, as a cluster hands them out.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$work/ca-key.pem" -out "$work/ca.pem" 2>/dev/null
  for h in host-a host-b; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$h" -keyout "$work/$h-key.pem" -out "$work/$h.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' "$h" >"$work/$h.ext"
    openssl x509 -req -in "$work/$h.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -CAcreateserial -days 2 \
      -extfile "$work/$h.ext" -out "$work/$h.pem" 2>/dev/null
  done
fi

# Consecutive ports: A's API, B's API, A's and B's replication listeners, A's and B's peer APIs and consensus endpoints.
base=$(shuf -i 20000-29990 -n 1)
a_url=http://127.0.0.1:$base b_url=http://127.0.0.1:$((base + 1))
a_rep=127.0.0.1:$((base + 2)) b_rep=127.0.0.1:$((base + 3))
# start_agent CPU DIR URL HOST REPLICATION_ADDRESS PEER_PORT CONSENSUS_PORT; both share one authority file (the stand-in for the cluster state).
start_agent() {
  local cpu=$1
  shift
  if [ "$cpu" = a ]; then cpu=("${on_cpu_a[@]}"); else cpu=("${on_cpu_b[@]}"); fi
  local certs=()
  [ "$tls" = 1 ] && certs=(--replication-tls-cert "$work/$3.pem" --replication-tls-key "$work/$3-key.pem" --replication-tls-ca "$work/ca.pem")
  "${cpu[@]}" "${ferry[@]}" agent --data "$work/$1" --listen "$2" --host-name "$3" --replication-listen "$4" "${certs[@]}" \
    --replication-authority "$work/authority.json" --peer-listen "127.0.0.1:$5" --consensus-listen "127.0.0.1:$6" >"$work/$1.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  until curl -fs "$2/api/v1/health" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "agent $3 exited:" >&2; cat "$work/$1.log" >&2; exit 1; }
    sleep 0.1
  done
}
start_agent a a "$a_url" host-a "$a_rep" $((base + 4)) $((base + 6))
start_agent b b "$b_url" host-b "$b_rep" $((base + 5)) $((base + 7))
on_a() { FERRY_SERVER=$a_url "${ferry[@]}" "$@"; }
on_b() { FERRY_SERVER=$b_url "${ferry[@]}" "$@"; }
uri() { echo "nbd+unix:///$1?socket=$work/a/nbd.sock"; }

# fio's nbd engine prints a line of its own on stdout, so the JSON goes through a file.
fio_json() { "${on_cpu_a[@]}" fio --output-format=json --output="$work/fio.json" --name=j "$@" >/dev/null && jq -e '.jobs[0].error == 0' "$work/fio.json" >/dev/null && cat "$work/fio.json"; }
fio_nbd() { fio_json --ioengine=nbd --uri="$1" --rw="$2" --bs="$3" --iodepth="$4" --size="$size" --time_based --runtime="$runtime"; }
fill() { fio_json --ioengine=nbd --uri="$(uri "$1")" --rw=write --bs=1M --iodepth=8 --size="$2" --refill_buffers >/dev/null; }
# IOPS for 4k jobs, MiB/s for 1M jobs, mean total latency (submission to completion) in microseconds.
metric() { jq -r --arg k "$1" '.jobs[0].write | if $k == "bw" then .bw / 1024 elif $k == "lat" then .lat_ns.mean / 1000 else .iops end'; }
peer() { on_a volume show "$1" -o json | jq -c '.copy.peers[0]'; }

# An empty copy on B of A's volume NAME and B's link back to A, as tests/.../ReplicatedPair.cs does;
# the primary's own link (replicate_primary) comes last and starts the resync.
copy_to_b() {
  local id
  id=$(on_a volume show "$1" -o json | jq -r .id)
  on_b volume create "$1" --size "$2" --copy-of "$id" -o json >/dev/null
  on_b volume replicate "$1" --peer "host-a=$a_rep" -o json >/dev/null
}
replicate_primary() {
  on_a volume replicate "$1" --peer "host-b=$b_rep" --protocol "$2" -o json >/dev/null
  on_a volume wait-sync "$1" --timeout 600 >/dev/null
}

for v in plain protc prota; do on_a volume create "$v" --size "$size" -o json >/dev/null; done
copy_to_b protc "$size"; replicate_primary protc C
copy_to_b prota "$size"; replicate_primary prota A
# Fill every volume first (replicated and in sync), so that the jobs overwrite data and not holes.
for v in plain protc prota; do fill "$v" "$size"; done

# name rw bs iodepth
jobs=(
  "4k random write QD32|randwrite|4k|32"
  "4k random write QD1|randwrite|4k|1"
  "1M sequential write|write|1M|8"
)

echo
printf '%-26s %10s %10s %10s %9s %9s\n' "job" "plain" "C" "A" "C/plain" "A/plain"
# CPU time used so far by agent A and agent B, in clock ticks (utime + stime of every thread).
cpu_ticks() { for p in "${pids[0]}" "${pids[1]}"; do awk '{ printf "%d ", $14 + $15 }' "/proc/$p/stat"; done; }
# What a job cost the CPU: milliseconds of agent A, agent B and fio per GiB written, one line per volume, for round R.
cpu_per_gib() {
  local v=$1 r=$2 hz
  hz=$(getconf CLK_TCK)
  read -r a0 b0 a1 b1 <"$work/$v.$r.cpu"
  jq -r --argjson a "$(((a1 - a0) * 1000 / hz))" --argjson b "$(((b1 - b0) * 1000 / hz))" \
    '.jobs[0] | (.write.io_bytes / 1073741824) as $g | (.job_runtime * (.usr_cpu + .sys_cpu) / 100) as $f
     | "\($a / $g | floor) \($b / $g | floor) \($f / $g | floor)"' "$work/$v.$r.json"
}
# The (upper) median of column N of a file of numbers: median_col FILE N
median_col() { cut -d' ' -f"$2" "$1" | sort -n | awk '{ x[NR] = $1 } END { print x[int((NR + 1) / 2)] }'; }
# The median of a job's rounds on one volume: median KEY VOLUME
median() { for r in $(seq "$rounds"); do metric "$1" <"$work/$2.$r.json"; done | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Every round of a job on one volume, for the record: each KEY VOLUME
each() { for r in $(seq "$rounds"); do metric "$1" <"$work/$2.$r.json"; done | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }'; }
for job in "${jobs[@]}"; do
  IFS='|' read -r name rw bs qd <<<"$job"
  [[ "$name" == *"${FERRY_BENCH_JOBS:-}"* ]] || continue
  key=iops; unit="IOPS"
  [ "$bs" = 1M ] && { key=bw; unit="MiB/s"; }
  # Each job starts with nothing dirty in the page cache: writeback of an earlier job's data would throttle it.
  for r in $(seq "$rounds"); do
    for v in plain protc prota; do
      sync
      [ "${FERRY_BENCH_COLD:-0}" = 1 ] && echo 1 >/proc/sys/vm/drop_caches
      before=$(cpu_ticks)
      fio_nbd "$(uri "$v")" "$rw" "$bs" "$qd" >"$work/$v.$r.json"
      echo "$before $(cpu_ticks)" >"$work/$v.$r.cpu"
    done
  done
  p=$(median $key plain); c=$(median $key protc); a=$(median $key prota)
  awk -v n="$name ($unit)" -v p="$p" -v c="$c" -v a="$a" 'BEGIN { printf "%-26s %10.0f %10.0f %10.0f %9.2f %9.2f\n", n, p, c, a, c / p, a / p }'
  echo "    rounds: plain $(each $key plain); C $(each $key protc); A $(each $key prota)"
  # CPU ms per GiB written (agent A + agent B + fio), the median over rounds of each part: steadier than speed on a busy machine.
  for v in plain protc prota; do
    for r in $(seq "$rounds"); do cpu_per_gib "$v" "$r"; done >"$work/$v.cpu-per-gib"
    read -r ca cb cf < <(for n in 1 2 3; do median_col "$work/$v.cpu-per-gib" "$n"; done | xargs)
    echo "    cpu ms/GiB $v: A $ca + B $cb + fio $cf = $((ca + cb + cf))"
  done
  if [ "$qd" = 1 ]; then
    p=$(median lat plain); c=$(median lat protc); a=$(median lat prota)
    awk -v p="$p" -v c="$c" -v a="$a" 'BEGIN { printf "%-26s %10.1f %10.1f %10.1f %9.2f %9.2f\n", "  mean latency (us)", p, c, a, p / c, p / a }'
  fi
done
echo "(ratios >= 1.00 mean the replicated volume is as fast as the plain one; for latency the ratio is plain/C and plain/A)"
# A link that dropped during the jobs would make its column a plain volume's; say so.
for v in protc prota; do
  [ "$(peer "$v" | jq -r .connection)" = connected ] || echo "WARNING: $v's peer is not connected after the jobs: $(peer "$v")"
done

[ "${FERRY_BENCH_RESYNC:-1}" = 0 ] && exit 0

# Resync: a full copy of a filled GiB from A to a new copy on B, timed from A's replicate to wait-sync returning.
on_a volume create sync --size "${sync_mib}M" -o json >/dev/null
fill sync "${sync_mib}M"
copy_to_b sync "${sync_mib}M" # B's half; A's half below is what starts the resync
# Before each copy: dirty data written back, the page cache emptied and the source read back into it. On a
# virtual machine, memory the guest never touched is slow to hand out the first time (the host backs it
# then): without this, whichever copier writes into never-touched pages pays 2-3x, whatever its own speed.
settle() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then echo 1 >/proc/sys/vm/drop_caches; fi
  cat "$work/a/volumes/sync/data" >/dev/null
}
settle
t0=$(date +%s%N)
replicate_primary sync C
t1=$(date +%s%N)
resync=$(peer sync)

# The peer: nbdcopy from A's export of the same volume to qemu-nbd serving a fresh raw file.
truncate -s "${sync_mib}M" "$work/qemu-nbd.raw"
"${on_cpu_b[@]}" qemu-nbd --format=raw --export-name=sync --socket="$work/qemu-nbd.sock" --shared=8 --persistent "$work/qemu-nbd.raw" &
pids+=($!)
until [ -S "$work/qemu-nbd.sock" ]; do sleep 0.1; done
settle
t2=$(date +%s%N)
"${on_cpu_a[@]}" nbdcopy "$(uri sync)" "nbd+unix:///sync?socket=$work/qemu-nbd.sock"
t3=$(date +%s%N)

# The file system's own ceiling for the target side: new data written into a new file (dd, page cache).
settle
t4=$(date +%s%N)
dd if="$work/a/volumes/sync/data" of="$work/dd.raw" bs=1M status=none
t5=$(date +%s%N)

# The agent's own start and end of the resync, without the CLI's start-up and wait-sync's 250 ms polling.
r0=$(date -d "$(jq -r .resync.startedAt <<<"$resync")" +%s.%N); r1=$(date -d "$(jq -r .resync.finishedAt <<<"$resync")" +%s.%N)
echo
awk -v m="$sync_mib" -v f="$(((t1 - t0) / 1000000))" -v n="$(((t3 - t2) / 1000000))" -v d="$(((t5 - t4) / 1000000))" -v r="$(awk -v a="$r0" -v b="$r1" 'BEGIN { print (b - a) * 1000 }')" 'BEGIN {
  printf "%-40s %10s %10s\n", "resync of " m " MiB", "ms", "MiB/s"
  printf "%-40s %10.0f %10.0f\n", "ferry replicate .. wait-sync returned", f, m / (f / 1000)
  printf "%-40s %10.0f %10.0f\n", "  (agent'"'"'s resync startedAt..finishedAt)", r, m / (r / 1000)
  printf "%-40s %10.0f %10.0f\n", "nbdcopy ferry export -> qemu-nbd", n, m / (n / 1000)
  printf "%-40s %10.0f %10.0f\n", "dd of the same data into a new file", d, m / (d / 1000)
  printf "ferry resync / nbdcopy: %.2f, ferry resync / dd: %.2f\n", n / f, d / f
}'
echo "resyncBytesSent: $(jq -r .resyncBytesSent <<<"$resync") (decision: $(jq -r .decision <<<"$resync"))"
echo
echo "targets: C >= 0.70 of plain for 1M sequential, >= 0.60 of plain IOPS for 4k random write QD32; resync >= 500 MiB/s"
