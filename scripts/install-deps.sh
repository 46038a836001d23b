#!/usr/bin/env bash
# Installs the programs Ferry and its tests use, from Debian packages. Safe to run again.
set -euo pipefail

packages=(
  qemu-system-x86 qemu-utils    # the hypervisor and disk image tools
  cpio busybox-static gzip      # building the test guest
  curl iproute2 procps          # health checks, network namespaces, process tools
  libnbd-bin fio nbdkit         # real NBD clients and servers for the volume tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

# The test guest's kernel comes from the package lists too, so they must exist even when nothing is missing.
if [ ${#missing[@]} -gt 0 ] || ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  echo "installing: ${missing[*]:-(package lists only)}" >&2
  "${sudo[@]}" apt-get update -q >&2
fi

if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
