#!/usr/bin/env bash
# Sets up the two emulated CPUs of the oracle suite (tests/oracles/test_emulated_*.py,
# tools/emulated_paths.py, tools/emulated_aarch64.py). Idempotent; needs root for apt-get the
# first time.
#
# 1. qemu-user (Debian): qemu-x86_64 -cpu Haswell runs ONNX Runtime and PyTorch as on an AVX2 CPU
#    without VNNI; qemu-aarch64 runs the aarch64 builds.
# 2. An aarch64 sysroot, cached in $NPQUANT_AARCH64_ROOT (default ~/.cache/npquant/aarch64):
#    Debian's arm64 python3.11 and the libraries it loads, unpacked with dpkg -x (python3:arm64
#    cannot be installed beside the host's python), plus the aarch64 wheels of numpy,
#    ai-edge-litert and onnxruntime at the host's versions (pip --platform manylinux_*_aarch64,
#    glibc <= bookworm's 2.36)
#    and a fake /proc/cpuinfo for the emulated CPU (qemu shows aarch64 programs the host's x86
#    /proc/cpuinfo, on which LiteRT's CPU detection crashes; qemu -L PREFIX reads PREFIX/proc/...).
#    A stamp file records what was built; a second run with the same versions does nothing.
#    Measured on the project machine: 10-30 s (network) and 245 MB the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v qemu-x86_64 >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then
    echo "setup_emulation: run as root, or 'sudo apt-get install qemu-user'" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
  echo "setup_emulation: installed $(qemu-x86_64 --version | head -n 1)"
else
  echo "setup_emulation: qemu-user is installed"
fi

# ---- the aarch64 sysroot
ROOT_DIR="${NPQUANT_AARCH64_ROOT:-$HOME/.cache/npquant/aarch64}"
# The framework versions are the host's, so that both CPUs run the same releases.
host_version() {
  python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || {
    echo "setup_emulation: $1 is not installed here; run bash tools/setup.sh first" >&2
    exit 1
  }
}
NUMPY_V=$(host_version numpy)
LITERT_V=$(host_version ai-edge-litert)
ORT_V=$(host_version onnxruntime)
PY_V=$(python3 -c "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')")
# The Debian arm64 packages: python3.11 and the shared libraries that it, its standard
# extension modules and the wheels load (libstdc++ for LiteRT and ORT).
DEBS="libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5
libuuid1 libcrypt1 libpython${PY_V}-minimal python${PY_V}-minimal libpython${PY_V}-stdlib"
STAMP="python${PY_V} numpy==${NUMPY_V} ai-edge-litert==${LITERT_V} onnxruntime==${ORT_V} v1"

if [ -f "$ROOT_DIR/stamp" ] && [ "$(cat "$ROOT_DIR/stamp")" = "$STAMP" ]; then
  echo "setup_emulation: aarch64 sysroot is ready in $ROOT_DIR ($STAMP)"
  exit 0
fi
. /etc/os-release
if [ "${ID:-}" != "debian" ]; then
  echo "setup_emulation: the aarch64 sysroot is built from Debian packages; this is ${ID:-?}" >&2
  exit 1
fi
start=$(date +%s)
rm -rf "$ROOT_DIR"
mkdir -p "$ROOT_DIR"/apt/lists/partial "$ROOT_DIR"/apt/cache/archives/partial \
  "$ROOT_DIR"/debs "$ROOT_DIR"/sysroot/proc
touch "$ROOT_DIR/apt/status"
# A private apt state for arm64 only: the host's apt configuration is left as it is (no
# dpkg --add-architecture), and only the package lists and the .debs named above are fetched.
APT_OPTS=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64
  -o Dir::State::Lists="$ROOT_DIR/apt/lists" -o Dir::Cache="$ROOT_DIR/apt/cache"
  -o Dir::State::status="$ROOT_DIR/apt/status" -o Debug::NoLocking=1
  -o APT::Sandbox::User=root)
echo "setup_emulation: arm64 package lists of Debian $VERSION_CODENAME"
apt-get "${APT_OPTS[@]}" update -qq
echo "setup_emulation: downloading $(echo $DEBS | wc -w) arm64 packages"
# shellcheck disable=SC2086
(cd "$ROOT_DIR/debs" && apt-get "${APT_OPTS[@]}" download -qq $DEBS)
for deb in "$ROOT_DIR"/debs/*.deb; do
  dpkg -x "$deb" "$ROOT_DIR/sysroot"
done
rm -rf "$ROOT_DIR/apt"
if [ ! -x "$ROOT_DIR/sysroot/usr/bin/python${PY_V}" ]; then
  echo "setup_emulation: Debian $VERSION_CODENAME has no python${PY_V} for arm64" >&2
  exit 1
fi

echo "setup_emulation: aarch64 wheels: numpy==$NUMPY_V ai-edge-litert==$LITERT_V onnxruntime==$ORT_V"
# --no-deps: the child process imports only numpy, ai_edge_litert.interpreter and onnxruntime
# (tools/emulated_aarch64.py builds the models on the host); the pure-Python modules those import
# follow, at the host's versions.
# pip matches --platform tags exactly: name every manylinux_2_N up to the sysroot's glibc 2.36.
PLATFORMS=()
for n in $(seq 17 36); do PLATFORMS+=(--platform "manylinux_2_${n}_aarch64"); done
PIP=(python3 -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all:
  "${PLATFORMS[@]}" --python-version "$PY_V" --implementation cp
  --target "$ROOT_DIR/site")
"${PIP[@]}" "numpy==$NUMPY_V" "ai-edge-litert==$LITERT_V" "onnxruntime==$ORT_V" \
  "flatbuffers==$(host_version flatbuffers)" "protobuf==$(host_version protobuf)" \
  "packaging==$(host_version packaging)"

# The emulated CPU is qemu's neoverse-n1 (tools/emulated_aarch64.py: -cpu neoverse-n1); its MIDR
# is 0x414fd0c1 (implementer 0x41 Arm, variant 4, part 0xd0c, revision 1) and its hwcaps are
# those below. One entry per host CPU, as /sys/devices/system/cpu (which qemu passes through)
# counts them.
for i in $(seq 0 $(($(nproc) - 1))); do
  printf 'processor\t: %d\nBogoMIPS\t: 50.00\n' "$i"
  printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid '
  printf 'asimdrdm lrcpc dcpop asimddp ssbs\n'
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n'
  printf 'CPU part\t: 0xd0c\nCPU revision\t: 1\n\n'
done > "$ROOT_DIR/sysroot/proc/cpuinfo"
echo "$STAMP" > "$ROOT_DIR/stamp"
echo "setup_emulation: aarch64 sysroot ready in $ROOT_DIR ($(du -sh "$ROOT_DIR" | cut -f1)," \
  "$(($(date +%s) - start)) s)"
