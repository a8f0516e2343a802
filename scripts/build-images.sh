#!/usr/bin/env bash
# Build the systemd base images that stand in for bare servers in Molecule
# scenarios and the sandbox. No registry is needed: each image is bootstrapped
# from the Debian archive and imported. An image is rebuilt only when this
# recipe changes (its hash is stored as a label on the image).
#
# Usage: scripts/build-images.sh [debian12] [debian13]   (default: both)
set -euo pipefail

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
repo=${IMAGE_REPO:-procurement-systemd}
# What a freshly installed minimal server has: systemd as init, Python for
# Ansible, sudo, SSH for the sandbox, and the usual process/network tools.
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,openssh-server,ca-certificates,gnupg
recipe=$(sha256sum "$0" | cut -c1-16)

declare -A suites=([debian12]=bookworm [debian13]=trixie)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(debian12 debian13)

build() {
  local tag=$1 suite=$2 root
  local image="${repo}:${tag}"
  if [ "$(docker image inspect -f '{{ index .Config.Labels "recipe" }}' "${image}" 2>/dev/null)" = "${recipe}" ]; then
    echo "build-images: ${image} is current (recipe ${recipe})"
    return 0
  fi
  root=$(mktemp -d "/var/tmp/${repo}-${tag}.XXXXXX")
  trap 'rm -rf "${root}"' RETURN
  echo "build-images: bootstrapping ${suite} into ${root}"
  debootstrap --variant=minbase --include="${packages}" "${suite}" "${root}" "${mirror}" \
    >"${root}.log" 2>&1 || { tail -n 30 "${root}.log" >&2; return 1; }
  # As Debian's installer leaves a server: the security repository in APT's
  # sources and its updates installed, once per image, so that no test host
  # downloads them at its first converge. (Updates without their source
  # would leave packages newer than the archive's, whose siblings then
  # cannot install.)
  echo "deb ${security_mirror} ${suite}-security main" >>"${root}/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"
  chmod 0755 "${root}/usr/sbin/policy-rc.d"
  { chroot "${root}" apt-get update -qq &&
    chroot "${root}" env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade
  } >"${root}.log" 2>&1 || { tail -n 30 "${root}.log" >&2; return 1; }
  rm -f "${root}.log" "${root}/usr/sbin/policy-rc.d"

  # A container has no consoles or kernel knobs to set up; these units would
  # only fail and leave systemd "degraded".
  for unit in getty.target console-getty.service systemd-firstboot.service \
              systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount \
              sys-kernel-tracing.mount systemd-modules-load.service; do
    ln -sf /dev/null "${root}/etc/systemd/system/${unit}"
  done
  # Every container must generate its own machine id and SSH host keys.
  : >"${root}/etc/machine-id"
  rm -f "${root}"/etc/ssh/ssh_host_*
  mkdir -p "${root}/etc/systemd/system/ssh.service.d"
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' >"${root}/etc/systemd/system/ssh.service.d/hostkeys.conf"
  # As in Docker's own Debian images: a container's files need no fsync
  # per unpacked file (the image is thrown away, not power-cycled), and
  # package translations are never read. Installs take less I/O and CPU.
  echo force-unsafe-io >"${root}/etc/dpkg/dpkg.cfg.d/container-unsafe-io"
  echo 'Acquire::Languages "none";' >"${root}/etc/apt/apt.conf.d/99container-no-translations"
  chroot "${root}" apt-get clean
  rm -rf "${root}"/var/lib/apt/lists/*

  tar -C "${root}" -c . | docker import \
    --change 'ENV container=docker' \
    --change "LABEL recipe=${recipe}" \
    --change 'CMD ["/lib/systemd/systemd"]' \
    - "${image}" >/dev/null
  echo "build-images: built ${image}"
}

for tag in "${targets[@]}"; do
  [ -n "${suites[$tag]:-}" ] || { echo "build-images: unknown image '${tag}' (known: ${!suites[*]})" >&2; exit 2; }
done
# Side by side: a bootstrap waits on the mirror as much as on the CPU, so
# two finish sooner together than one after the other.
pids=()
for tag in "${targets[@]}"; do
  build "${tag}" "${suites[$tag]}" &
  pids+=("$!")
done
rc=0
for pid in "${pids[@]}"; do
  wait "${pid}" || rc=1
done
exit "${rc}"
