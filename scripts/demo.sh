#!/usr/bin/env bash
# Ferry's demo: a local agent running the test guest as VM "demo" on a Ferry volume, left running for you to explore.
#   scripts/demo.sh        bring it up (again)
#   scripts/demo.sh down   stop the VM and the agent
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
demo=$root/.ferry-demo
port=${FERRY_DEMO_PORT:-7480}
http_port=${FERRY_DEMO_HTTP_PORT:-8080}
export FERRY_SERVER=http://127.0.0.1:$port

agent_running() { [ -f "$demo/agent.pid" ] && kill -0 "$(cat "$demo/agent.pid")" 2>/dev/null; }

if [ "${1:-up}" = down ]; then
  if agent_running; then
    ./ferry vm stop demo >/dev/null 2>&1 || true
    kill "$(cat "$demo/agent.pid")"
    rm -f "$demo/agent.pid"
    echo "demo stopped (data kept in $demo; remove it to start from scratch)"
  else
    echo "the demo agent is not running"
  fi
  exit 0
fi

echo "==> installing what Ferry needs (Debian packages)"
scripts/install-deps.sh
echo "==> building the test guest"
guest=$(bash guest/build.sh)
echo "==> building ferry"
./ferry --help >/dev/null

mkdir -p "$demo"
if ! agent_running; then
  echo "==> starting the agent on 127.0.0.1:$port (log: $demo/agent.log)"
  setsid ./ferry agent --data "$demo/data" --listen "$FERRY_SERVER" >>"$demo/agent.log" 2>&1 < /dev/null &
  echo $! >"$demo/agent.pid"
  for _ in $(seq 100); do
    curl -fs "$FERRY_SERVER/api/v1/health" >/dev/null && break
    agent_running || { tail -5 "$demo/agent.log" >&2; exit 1; }
    sleep 0.2
  done
fi

if ! ./ferry vm show demo >/dev/null 2>&1; then
  echo "==> creating volume 'demo-disk' and VM 'demo' (the test guest, counting on that volume)"
  ./ferry volume show demo-disk >/dev/null 2>&1 || ./ferry volume create demo-disk --size 64M >/dev/null
  ./ferry vm create demo --memory 256M --disk volume:demo-disk \
    --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --append "$(cat "$guest/cmdline")" \
    --forward "$http_port:80" >/dev/null
fi
echo "==> starting VM 'demo'"
./ferry vm start demo >/dev/null

printf "==> waiting for the guest to answer on http://127.0.0.1:%s/counter " "$http_port"
for _ in $(seq 300); do
  if count=$(curl -fs --max-time 2 "http://127.0.0.1:$http_port/counter"); then break; fi
  printf "."; sleep 0.3
done
echo
./ferry vm list
cat <<MSG

The demo VM is running and counts on its disk, the Ferry volume 'demo-disk' served to QEMU over
NBD ($count so far). Try:
  ./ferry vm show demo                    its details (add -o json for scripts)
  ./ferry volume show demo-disk           the volume: size, space allocated, NBD export
  curl http://127.0.0.1:$http_port/counter  its health check: the counter
  ./ferry vm console demo --follow        its serial console (Ctrl-C to leave)
  ./ferry vm events --follow              what happens, as it happens
  ./ferry vm restart demo                 stop and start it: the count continues
  scripts/demo.sh down                    stop everything

(./ferry talks to $FERRY_SERVER; set FERRY_SERVER=$FERRY_SERVER or pass --server in other shells.)
MSG
