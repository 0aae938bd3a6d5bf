#!/usr/bin/env bash
# Installs trainkit (editable) with its dependencies. torch is pinned first to the CPU
# build 2.13.0 so that no resolver step pulls the CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet torch==2.13.0
python3 -m pip install --quiet -c constraints.txt -e ".[dev,optuna,joblib,openmmlab]" "$@"
