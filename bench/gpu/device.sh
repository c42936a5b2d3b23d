#!/usr/bin/env bash
# The GPU check on the lent machine (or any CUDA machine whose python3 has torch, transformers and peft):
# installs the carried wheels (.whl/, made here by `python bench/gpu/prepare.py`) into /tmp/site without their
# dependencies and without an index, then runs `python3 -m bench.gpu`, writing under $OUT (the device tool's
# output folder) or results/gpu-check. Options after the script go to bench.gpu (e.g. --dry, --stages oracle).
#
#   bash bench/gpu/device.sh [bench.gpu options]
#   PYTHON=.venv/bin/python bash bench/gpu/device.sh --dry     # the same steps here, on the CPU
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
site=${GPU_CHECK_SITE:-/tmp/site}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "gpu-check: no wheels in .whl/ (python bench/gpu/prepare.py makes them); Captum and LXT must be installed" >&2
fi
export PYTHONUNBUFFERED=1
exec "$python" -m bench.gpu --out "${OUT:-results/gpu-check}" "$@"
