#!/usr/bin/env bash
# Installs what kafkaup's tests need on a fresh Debian/Ubuntu machine (run
# as root; `make test` calls it). Idempotent: it installs only what is missing.
set -euo pipefail

need_apt=()
want() { command -v "$1" >/dev/null 2>&1 || need_apt+=("$2"); }
want qemu-system-x86_64 qemu-system-x86
want qemu-img qemu-utils
want mmdebstrap mmdebstrap
want mkfs.ext4 e2fsprogs
want kcat kcat
want sshd openssh-server
want ssh openssh-client
want shellcheck shellcheck
want ip iproute2
want unshare util-linux
want curl curl
# The local cloud's namespace-host backend makes its default user "ubuntu"
# with sudo and reads #cloud-config user-data with python3-yaml.
want sudo sudo
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || need_apt+=(python3-yaml) # the hosts' python, not a pyenv
want java openjdk-17-jdk-headless
want mvn maven
# A real Prometheus scrapes the broker's --metrics endpoint (on loopback).
want prometheus prometheus
# kcat's SCRAM login to Kafka 4.x needs librdkafka >= 2.6.1; the tests build
# 2.8.0 from source (internal/testenv/rdkafka) with these.
want gcc gcc
want make make
want pkg-config pkg-config
want_dev() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ] || need_apt+=("$1")
}
want_dev libssl-dev
want_dev zlib1g-dev
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
[ -x /usr/lib/openssh/sftp-server ] || need_apt+=(openssh-sftp-server)

if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test/deps.sh: missing ${need_apt[*]}; run as root (or install them) and retry" >&2
    exit 1
  fi
  echo "test/deps.sh: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The package starts its own server on :9090 under systemd; the tests run
  # theirs on a free loopback port and need none.
  if [[ " ${need_apt[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

# The EC2 emulator (moto's server) for the AWS tests.
if ! command -v moto_server >/dev/null 2>&1; then
  echo "test/deps.sh: pip install moto[server]" >&2
  python3 -m pip install -q 'moto[server]'
fi

# Go, when missing: the toolchain go.mod names, from the Go module proxy
# (the same zip `GOTOOLCHAIN=auto` fetches), into /usr/local/go.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test/deps.sh: Go is missing; run as root to install it, or install Go 1.26+ (https://go.dev/doc/install), and retry" >&2
    exit 1
  fi
  version=$(awk '$1 == "go" {print $2; exit}' "$(dirname "$0")/../go.mod")
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "test/deps.sh: no Go toolchain for $(uname -m); install Go $version and retry" >&2; exit 1 ;;
  esac
  command -v unzip >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq unzip >/dev/null; }
  echo "test/deps.sh: installing Go $version from the Go module proxy into /usr/local/go" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  curl -fsSL -o "$tmp/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$version.linux-$arch.zip"
  unzip -q "$tmp/go.zip" -d "$tmp"
  mv "$tmp/golang.org/toolchain@v0.0.1-go$version.linux-$arch" /usr/local/go
fi
if ! command -v go >/dev/null 2>&1; then
  echo "test/deps.sh: Go is in /usr/local/go/bin but not on PATH: add it (export PATH=\$PATH:/usr/local/go/bin) and retry" >&2
  exit 1
fi
echo "test/deps.sh: test dependencies present" >&2
