#!/usr/bin/env bash
# Installs the Debian 12 packages nodeplane builds and tests with, only those missing.
# Run as root (make demo / make test call it). Idempotent and quiet when nothing is missing.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config clang-format clang libclang-rt-14-dev
  dpdk dpdk-dev libdpdk-dev
  libhyperscan-dev libboost-program-options-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libspdlog-dev nlohmann-json3-dev libsimdjson-dev libyaml-dev libcurl4-openssl-dev
  libnl-3-dev libnl-route-3-dev libpcap-dev libnftables-dev
  libssl-dev libipsec-mb-dev  # ESP: HKDF (OpenSSL), the crypto_aesni_gcm device's library
  containernetworking-plugins iproute2 iputils-ping ethtool procps curl tcpdump bridge-utils openssl
  iperf3 nftables  # nft: tests read what the daemon installed
  bind9-dnsutils unbound dnsperf  # cluster DNS: dig in pods, the upstream and measured peer
  prometheus-cpp-dev libcivetweb-dev prometheus  # /metrics (prometheus-cpp, civetweb); promtool in tests
  libc6-dev xz-utils util-linux libseccomp2  # the Kubernetes lab (tests/k8s)
  debootstrap  # make image: the Dockerfile's Debian base, assembled without a registry
  python3 python3-scapy python3-pytest python3-yaml python3-pyflakes
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or install them yourself) and try again" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || echo "install-deps: apt-get update failed; trying the cached package lists" >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}"
