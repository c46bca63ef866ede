# Shared by scripts/start and scripts/test: install what is missing, idempotently, on
# Debian. Each step checks first, so a second run on a ready machine takes seconds.
# shellcheck shell=bash

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

APT_UPDATED=0
# apt_install PKG...: installs the packages that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them (miosa's scripts target Debian)"
  say "installing ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_node() {
  command -v node >/dev/null 2>&1 || apt_install nodejs npm
  local major minor
  IFS=. read -r major minor _ <<<"$(node -p 'process.versions.node')"
  if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 19 ]; }; then
    die "miosa needs Node.js 20.19 or newer; found $(node -v)"
  fi
}

# Native modules (better-sqlite3) compile from source when no prebuilt binary is reachable.
ensure_build_tools() { apt_install python3 make g++ ca-certificates; }

# npm ci when package-lock.json changed since the last install (a stamp in node_modules).
ensure_npm_deps() {
  local stamp="$ROOT/node_modules/.miosa-lock-sha256" want
  want=$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  say "installing npm dependencies (npm ci; compiling better-sqlite3 takes about a minute)"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

build() {
  say "building"
  (cd "$ROOT" && npm run --silent build)
  chmod +x "$ROOT/dist/cli/main.js"
}

# PostgreSQL for the store's contract tests: installed, running, with a `miosa` role
# allowed to create databases. Exports MIOSA_TEST_DATABASE_URL.
ensure_postgres() {
  if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then apt_install postgresql; fi
  local line version cluster port status
  line=$(pg_lsclusters -h 2>/dev/null | head -n1 || true)
  if [ -z "$line" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -n1)
    say "creating PostgreSQL $version cluster"
    as_root pg_createcluster "$version" main >/dev/null
    line=$(pg_lsclusters -h | head -n1)
  fi
  read -r version cluster port status _ <<<"$line"
  if [ "$status" != online ]; then
    say "starting PostgreSQL $version/$cluster"
    as_root pg_ctlcluster "$version" "$cluster" start
  fi
  as_root runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 -c "
    DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'miosa') THEN
        CREATE ROLE miosa LOGIN CREATEDB PASSWORD 'miosa';
      END IF;
    END \$\$;" >/dev/null
  export MIOSA_TEST_DATABASE_URL="postgres://miosa:miosa@127.0.0.1:$port/postgres"
}

# Docker Engine (Debian's docker.io) running, and debootstrap for the offline base image.
ensure_docker() {
  apt_install docker.io debootstrap iptables btrfs-progs
  docker info >/dev/null 2>&1 && return 0
  say "starting the Docker daemon"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl start docker
  else
    # A session of its own: a daemon left in the caller's process group dies with it (a killed job, a CI step's cleanup).
    as_root setsid -f sh -c 'exec dockerd >/var/log/dockerd.log 2>&1 </dev/null'
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "the Docker daemon did not come up in 30 s (see /var/log/dockerd.log)"
}

# The tests of the Swarm runtime (--runtime swarm) need the daemon to be a Swarm manager: a
# single-node swarm on loopback. It leaves plain Docker as it was (bridge networks, published
# ports); it only adds the ingress network, which no test uses.
ensure_swarm() {
  [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ] && return 0
  say "making this Docker host a single-node swarm"
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
}

# Debian's Chromium for the browser tests (driven by playwright-core; no browser download).
ensure_browser() { apt_install chromium; }
