#!/usr/bin/env bash
# Installs qemu-user (Debian), with which tools/emulated_paths.py and the slow test
# tests/oracles/test_emulated_avx2.py run ONNX Runtime and PyTorch as on an AVX2 CPU without VNNI
# (qemu-x86_64 -cpu Haswell). Idempotent; needs root for apt-get.
set -euo pipefail
if command -v qemu-x86_64 >/dev/null 2>&1; then
  echo "setup_emulation: qemu-x86_64 is installed"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "setup_emulation: run as root, or 'sudo apt-get install qemu-user'" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
echo "setup_emulation: installed $(qemu-x86_64 --version | head -n 1)"
