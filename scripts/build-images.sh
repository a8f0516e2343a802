#!/usr/bin/env bash
# Build the systemd base images that stand in for bare servers in Molecule
# scenarios and the sandbox. No registry is needed: each image is bootstrapped
# from the Debian archive and imported. An image is rebuilt only when this
# recipe changes (its hash is stored as a label on the image).
#
# Usage: scripts/build-images.sh [debian12] [debian13] [debian12-common]
#        (default: all three)
#
# debian12-common is debian12 with the packages every host of the multi-host
# scenarios (cluster, failover) gets from the base, hardening, firewall and
# node_exporter roles already installed, as a provisioning template leaves
# a server. Their converges then install only what each tier adds; the
# scenarios on the bare images (stack, base, firewall) still prove those
# installs. The list is the same packages, dependencies and recommendations
# included, that those roles leave on a bare Debian 12 host.
set -euo pipefail

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
repo=${IMAGE_REPO:-procurement-systemd}
# What a freshly installed minimal server has: systemd as init, Python for
# Ansible, sudo, SSH for the sandbox, and the usual process/network tools.
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,openssh-server,ca-certificates,gnupg
recipe=$(sha256sum "$0" | cut -c1-16)

common_packages="acl apt-listchanges apt-show-versions curl debsums htop iptables libapt-pkg-perl libbrotli1
  libcrack2 libcurl4 libdpkg-perl libestr0 libfastjson4 libfile-fnmatch-perl libgdbm-compat4 libgdbm6 libglib2.0-0
  libip6tc2 libjansson4 liblognorm5 libnetfilter-conntrack3 libnfnetlink0 libnftables1 libnftnl11 libnghttp2-14
  libnl-3-200 libnl-genl-3-200 libpam-pwquality libpam-tmpdir libperl5.36 libpopt0 libpsl5 libpwquality-common
  libpwquality1 librtmp1 libsensors-config libsensors5 libssh2-1 logrotate lsb-release net-tools netbase nftables
  perl perl-modules-5.36 prometheus-node-exporter python3-cffi-backend python3-cryptography python3-dbus
  python3-debconf python3-distro-info python3-distutils python3-lib2to3 python3-pip python3-pip-whl
  python3-pkg-resources python3-setuptools python3-setuptools-whl python3-venv python3-wheel python3.11-venv rsync
  rsyslog sysstat systemd-timesyncd ufw unattended-upgrades xz-utils"

declare -A suites=([debian12]=bookworm [debian13]=trixie)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(debian12 debian13 debian12-common)

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

# debian12 with the common packages installed (above): a container of the
# base image runs apt (without systemd, so no service starts), and is
# committed as the new image.
build_common() {
  local image="${repo}:debian12-common" builder="${repo}-debian12-common-build"
  if [ "$(docker image inspect -f '{{ index .Config.Labels "recipe" }}' "${image}" 2>/dev/null)" = "${recipe}" ]; then
    echo "build-images: ${image} is current (recipe ${recipe})"
    return 0
  fi
  echo "build-images: installing the common packages into ${image}"
  docker rm -f "${builder}" >/dev/null 2>&1 || true
  local names
  names=$(echo ${common_packages})
  # Each container must still generate its own machine id (as in the base).
  docker run --name "${builder}" "${repo}:debian12" /bin/sh -c \
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${names} && apt-get clean && rm -rf /var/lib/apt/lists/* && : >/etc/machine-id" \
    >"/var/tmp/${repo}-debian12-common.log" 2>&1 || {
    tail -n 30 "/var/tmp/${repo}-debian12-common.log" >&2
    docker rm -f "${builder}" >/dev/null
    return 1
  }
  docker commit \
    --change 'ENV container=docker' \
    --change "LABEL recipe=${recipe}" \
    --change 'CMD ["/lib/systemd/systemd"]' \
    "${builder}" "${image}" >/dev/null
  docker rm -f "${builder}" >/dev/null
  rm -f "/var/tmp/${repo}-debian12-common.log"
  echo "build-images: built ${image}"
}

# The common image is built after its base; each base once.
common=false
declare -A bases=()
for tag in "${targets[@]}"; do
  if [ "${tag}" = debian12-common ]; then common=true; tag=debian12; fi
  [ -n "${suites[$tag]:-}" ] || { echo "build-images: unknown image '${tag}' (known: ${!suites[*]} debian12-common)" >&2; exit 2; }
  bases[$tag]=1
done
# Side by side: a bootstrap waits on the mirror as much as on the CPU, so
# two finish sooner together than one after the other.
pids=()
for tag in "${!bases[@]}"; do
  if [ "${tag}" = debian12 ] && "${common}"; then
    { build debian12 "${suites[debian12]}" && build_common; } &
  else
    build "${tag}" "${suites[$tag]}" &
  fi
  pids+=("$!")
done
rc=0
for pid in "${pids[@]}"; do
  wait "${pid}" || rc=1
done
exit "${rc}"
