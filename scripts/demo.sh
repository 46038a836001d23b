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
  echo "==> bringing up lab 'demo': hosts h1, h2, h3 in network namespaces, formed into a cluster, each with the lab's fence agent"
  ./ferry lab up --nodes 3 --fence >/dev/null
fi
addr() { ./ferry lab status -o json | sed -n "/\"name\": \"$1\"/,/address/s/.*\"address\": \"\(.*\)\".*/\1/p"; }
h1=$(addr h1)
export FERRY_SERVER="http://$h1:7480"   # any host answers for the whole cluster

if ! ./ferry volume show demo-disk >/dev/null 2>&1; then
  echo "==> creating volume 'demo-disk' with a copy on each of h1, h2 and h3 (protocol C)"
  ./ferry volume create demo-disk --size 64M --host h1,h2,h3 >/dev/null
fi

if ! ./ferry vm show demo >/dev/null 2>&1; then
  echo "==> defining VM 'demo' (the test guest, counting on its replicated disk)"
  ./ferry vm create demo --memory 256M --disk volume:demo-disk --prefer h1 \
    --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --append "$(cat "$guest/cmdline")" \
    --forward "0.0.0.0:8080:80" --health-check http://127.0.0.1:8080/health >/dev/null
fi
echo "==> starting VM 'demo': the cluster places it and makes its disk primary there"
host=$(./ferry vm start demo -o json | sed -n 's/.*"host": "\(.*\)".*/\1/p')
at=$(addr "$host")

printf "==> waiting for the guest to answer on http://%s:8080/counter " "$at"
for _ in $(seq 300); do
  if count=$(curl -fs --max-time 2 "http://$at:8080/counter"); then break; fi
  printf "."; sleep 0.3
done
echo
./ferry lab status
./ferry vm list
./ferry volume show demo-disk
cat <<MSG

Three hosts run as a cluster; VM 'demo' runs on $host and counts on its disk ($count so far), the volume
'demo-disk', written to h1, h2 and h3 at once. Try:
  export FERRY_LAB=demo FERRY_SERVER=http://$h1:7480
  ./ferry cluster status                  members, leader, term, health and memory of each host
  ./ferry cluster verify                  what puts the cluster at risk (N+1, twins, single copies)
  ./ferry volume show demo-disk           each copy as its host reports it
  ./ferry vm console demo --follow        the guest's serial console (on $host: --server http://$at:7480)
  curl http://$at:8080/counter            the guest's health check: the counter
  ./ferry vm migrate demo                 live to another host of its disk; vm show says the downtime
  ./ferry node drain $host; ./ferry node undrain $host
                                          maintenance: the VM moves away live, and back
  ./ferry lab partition h2                cut h2 off: the cluster marks its copy Outdated, writes go on
  ./ferry lab heal                        h2 comes back and resyncs only what it missed
  ./ferry lab kill $host                   a power cut: within 8-9 s the VM runs on another host,
                                          its count intact (./ferry vm show demo; ./ferry lab start $host)
  ./ferry cluster events                  what the cluster did, step by step
  scripts/demo.sh down                    remove everything
MSG
