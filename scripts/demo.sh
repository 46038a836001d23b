#!/usr/bin/env bash
# Ferry's demo: a lab of three hosts on this machine (network namespaces, a real agent each) formed
# into a cluster, with the test guest running as VM "demo" on h1, its disk a volume replicated to h2
# and h3. Left running for you to explore.
#   scripts/demo.sh        bring it up (again)
#   scripts/demo.sh down   remove the lab: its processes, namespaces and data
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" -eq 0 ] || exec sudo env "PATH=$PATH" "$0" "$@"   # namespaces need root

export FERRY_LAB=demo
if [ "${1:-up}" = down ]; then
  ./ferry lab down
  echo "demo removed"
  exit 0
fi

echo "==> installing what Ferry needs (Debian packages)"
scripts/install-deps.sh
echo "==> building the test guest"
guest=$(bash guest/build.sh)
echo "==> building ferry"
./ferry --help >/dev/null

if ! ./ferry lab status >/dev/null 2>&1; then
  echo "==> bringing up lab 'demo': hosts h1, h2, h3 in network namespaces, formed into a cluster"
  ./ferry lab up --nodes 3 >/dev/null
fi
addr() { ./ferry lab status -o json | sed -n "/\"name\": \"$1\"/,/address/s/.*\"address\": \"\(.*\)\".*/\1/p"; }
h1=$(addr h1) h2=$(addr h2) h3=$(addr h3)
on() { local host=$1; shift; ./ferry --server "http://$host:7480" "$@"; }

if ! on "$h1" volume show demo-disk >/dev/null 2>&1; then
  echo "==> creating volume 'demo-disk': primary on h1, copies on h2 and h3 (protocol C)"
  id=$(on "$h1" volume create demo-disk --size 64M -o json | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1)
  for host in "$h2" "$h3"; do
    on "$host" volume create demo-disk --size 64M --copy-of "$id" >/dev/null
    on "$host" volume replicate demo-disk --peer "h1=$h1:7472" >/dev/null
  done
  on "$h1" volume replicate demo-disk --peer "h2=$h2:7472" --peer "h3=$h3:7472" >/dev/null
  on "$h1" volume wait-sync demo-disk --timeout 120 >/dev/null
fi

if ! on "$h1" vm show demo >/dev/null 2>&1; then
  echo "==> creating VM 'demo' on h1 (the test guest, counting on its replicated disk)"
  on "$h1" vm create demo --memory 256M --disk volume:demo-disk \
    --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --append "$(cat "$guest/cmdline")" \
    --forward "0.0.0.0:8080:80" >/dev/null
fi
echo "==> starting VM 'demo'"
on "$h1" vm start demo >/dev/null

printf "==> waiting for the guest to answer on http://%s:8080/counter " "$h1"
for _ in $(seq 300); do
  if count=$(curl -fs --max-time 2 "http://$h1:8080/counter"); then break; fi
  printf "."; sleep 0.3
done
echo
./ferry lab status
on "$h1" volume show demo-disk
cat <<MSG

Three hosts run as a cluster; VM 'demo' runs on h1 and counts on its disk ($count so far), the volume
'demo-disk', written to h1, h2 and h3 at once. Try:
  export FERRY_LAB=demo FERRY_SERVER=http://$h1:7480
  ./ferry cluster status                  members, leader, term, health of each host
  ./ferry volume show demo-disk           the copies on h2 and h3: connected, in sync
  ./ferry vm console demo --follow        the guest's serial console (Ctrl-C to leave)
  curl http://$h1:8080/counter            the guest's health check: the counter
  ./ferry lab partition h3                cut h3 off: the volume goes on with h2, h3 is marked Outdated
  ./ferry lab heal                        h3 comes back and resyncs only what it missed
  ./ferry lab kill h2; ./ferry lab start h2   a host dies and restarts from its log
  scripts/demo.sh down                    remove everything
MSG
