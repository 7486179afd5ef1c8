#!/usr/bin/env bash
# One command for a machine with a CUDA GPU: the CUDA tests, bf16 training of the `base` preset at
# 256x256 (images/s, peak memory), the GPU section of benchmarks/bench_model.py and 3DGS on lego
# (`spikegen nvs prepare -> restore --method tfp -> train`, PSNR), in about 8 minutes, into one
# results folder (device_check.json + device_check.txt + device_check.log).
#
#   scripts/device_check.sh OUT_DIR [--wheels DIR] [--shared DIR] [--scene DIR] [--budget SECONDS]
#
# --wheels DIR  install gsplat (and any missing dependency, e.g. diffusers) from a wheel folder:
#               pip install --no-index --find-links DIR ...
# --shared DIR  the shared data folder (default: $SPIKEGEN_SHARED, ./shared, ../shared)
# Exit codes: 0 all stages passed; 1 a stage failed or ran out of time; 2 usage;
#             3 no CUDA device (checked first, in seconds); 4 required packages missing.
# See docs/training.md ("GPU check").
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
fi
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: scripts/device_check.sh OUT_DIR [--wheels DIR] [--shared DIR] [--scene DIR] [--budget SECONDS]" >&2
    exit 2
fi
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY="$(command -v python3 || command -v python)"; fi
fi
if [ -z "$PY" ]; then
    echo "device_check: no Python found (set PYTHON=/path/to/python)" >&2
    exit 2
fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PY" "$ROOT/scripts/device_check.py" "$@"
