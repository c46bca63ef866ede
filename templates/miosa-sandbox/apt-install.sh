#!/bin/sh
# Installs Debian packages during a template build (sh apt-install.sh PACKAGE...):
# from the mirror the build passes in DEBIAN_MIRROR, trusting the platform's CA bundle
# for an https mirror, without recommends, and leaving no package lists behind.
set -eu
if [ -n "${DEBIAN_MIRROR:-}" ]; then
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$DEBIAN_MIRROR" "$DEBIAN_MIRROR" >/etc/apt/sources.list
fi
ca=/etc/miosa/ca-certificates.crt
trust=""
if [ -s "$ca" ]; then trust="-o Acquire::https::CAInfo=$ca"; fi
# shellcheck disable=SC2086 # $trust is empty or one option and its value
apt-get $trust -o Dpkg::Use-Pty=0 update -q
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get $trust -o Dpkg::Use-Pty=0 install -q -y --no-install-recommends "$@"
apt-get clean
rm -rf /var/lib/apt/lists/*
