#!/usr/bin/env bash
# Installs everything npquant needs on a fresh machine: the FashionMNIST IDX files (Debian package
# dataset-fashion-mnist, when run as root), a C compiler for the golden C-header test (Debian
# package gcc, when cc is missing and this is root) and npquant itself, editable, with its test,
# interop and plot extras (pytest, hypothesis, ruff; ai-edge-litert, onnx, onnxruntime, torch==2.13.0
# CPU; matplotlib for the experiment plots).
set -euo pipefail
cd "$(dirname "$0")/.."

FMNIST_DIR=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: installing Debian package dataset-fashion-mnist"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: FashionMNIST is missing from $FMNIST_DIR and this is not root." >&2
    echo "setup: run 'sudo apt-get install dataset-fashion-mnist', or pass --data-dir DIR" >&2
    echo "setup: to npquant commands, pointing at a folder with the four IDX files." >&2
  fi
fi

if ! command -v cc >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: installing Debian package gcc (the golden C-header test compiles with cc)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null
  else
    echo "setup: no C compiler (cc); the golden C-header test will skip outside CI." >&2
    echo "setup: run 'sudo apt-get install gcc' to enable it." >&2
  fi
fi

echo "setup: pip install -e .[test,interop,plot]"
python3 -m pip install -q --disable-pip-version-check -e ".[test,interop,plot]"
