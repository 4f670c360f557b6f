#!/usr/bin/env bash
# The engine benchmark on a GPU: SimpleClick ViT-B at 448 x 448 (eval-mode fixed448, on DAVIS
# too), bfloat16, --device cuda, batch sizes 1/4/8/16, the same table as the CPU run
# (benchmarks/bench_engine.py explains the columns). Batch 1 is the official one-instance loop;
# the larger batches run as `bench run --device cuda` does by default: pipelined (two cohorts,
# one in the network while the other is scored) with the click rule on harness threads. The
# network ceiling printed below the table is the batched network call alone.
#
# Targets (issue 11): >= 5x instances/s at batch 16 over batch 1, network busy >= 80 % of the
# wall time at batch 16.
#
# No weights can be downloaded on the benchmark machine, so a random-weight ViT-B checkpoint is
# written in the official format first (top-level "state_dict" + "config" with the class name and
# the constructor parameters of models/iter_mask/plainvit_base448_cocolvis_itermask.py, as
# isegm/utils/misc.py:save_checkpoint writes them). Random weights cost exactly what the released
# ones do; their clicks differ, so the table measures speed, not accuracy.
#
#   benchmarks/gpu_engine.sh [more bench_engine.py options, e.g. --instances 64 --max-clicks 5]
#   DEVICE=cpu DTYPE=float32 benchmarks/gpu_engine.sh --instances 1 --max-clicks 1 \
#       --batch-sizes 1,2      # a quick check of the script itself without a GPU
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKPOINT=${CHECKPOINT:-${TMPDIR:-/tmp}/iseg-bench-simpleclick-vit-b-random.pth}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}

python - "$CHECKPOINT" <<'EOF'
import sys
from pathlib import Path

import torch

from bench.adapters.simpleclick.network import build_simpleclick

path = Path(sys.argv[1])
if not path.exists():
    torch.manual_seed(0)
    model = build_simpleclick("base")

    def builtin(value):
        return {"type": "builtin", "value": value, "specified": True}

    config = {
        "class": "isegm.model.is_plainvit_model.PlainVitModel",
        "params": {
            "use_disks": builtin(True),
            "norm_radius": builtin(5),
            "with_prev_mask": builtin(True),
            "backbone_params": builtin(
                {"img_size": (448, 448), "patch_size": (16, 16), "in_chans": 3,
                 "embed_dim": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4,
                 "qkv_bias": True}
            ),
            "neck_params": builtin({"in_dim": 768, "out_dims": [128, 256, 512, 1024]}),
            "head_params": builtin(
                {"in_channels": [128, 256, 512, 1024], "in_index": [0, 1, 2, 3],
                 "dropout_ratio": 0.1, "num_classes": 1, "align_corners": False,
                 "upsample": "x1", "channels": 256}
            ),
            "random_split": builtin(False),
        },
    }
    torch.save({"state_dict": model.state_dict(), "config": config}, path)
    print(f"wrote random-weight ViT-B checkpoint {path}")
EOF

python benchmarks/bench_engine.py --models simpleclick-vit-b \
    --checkpoint "simpleclick-vit-b=$CHECKPOINT" --model-option input_size=448 \
    --device "$DEVICE" --dtype "$DTYPE" --batch-sizes 1,4,8,16 --instances 64 --max-clicks 5 \
    --repeat 3 "$@"
echo "targets: x b1 >= 5.00 at batch 16; net% >= 80 at batch 16"
