"""The GPU check: the paper run's PyTorch stages measured at LLaMA-3.1-8B size on one lent GPU, in one command.

    python3 -m bench.gpu --out DIR          # on a CUDA machine (the lent one: bash bench/gpu/device.sh)
    python3 -m bench.gpu --dry --out DIR    # tiny shapes on the CPU, the same code path (a few seconds)

See docs/gpu.md. Modules: `report` (JSON and Markdown written as it goes, budgets, memory), `model` (the shape,
the card's bf16 rate, FLOPs, the transformers-5 shims), `inputs` (real XQuAD 2-shot prompts), one module per
measured stage (`oracle`, `layers`, `generation`, `lora`), `projection` (GPU-hours of the paper config) and
`prepare` (the carried wheels and their size).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The checkout's own package first, before any installed copy: the tree that travels with the call is the code
# that is measured (and xmrc finds config/ and data/ beside its src/).
if sys.path[:1] != [str(ROOT / "src")]:
    sys.path.insert(0, str(ROOT / "src"))
