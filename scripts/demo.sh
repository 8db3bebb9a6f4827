#!/usr/bin/env bash
# The offline demo (`make demo`): the paper's whole pipeline in miniature on the CPU --
# vanilla and CTC training of resnet8, linear transfer of every checkpoint to CINIC-10,
# MINE estimates, the trade-off figure and table -- on synthetic images written in the
# real CIFAR-100 and CINIC-10 formats. Everything lands in demo/; the numbers are synthetic.
set -euo pipefail
PYTHON=${1:-python}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p demo
cd demo
"$PYTHON" "$HERE/scripts/make_demo_data.py" --data_root data
export PYTHON EPOCHS=6 CTC_EPOCHS=6 STAGE_TWO=3 SAVE_FREQ=2 START=2 SKIP=2 PROBE_EPOCHS=5 NCE_K=256 \
  XT_ITERS=300 TY_ITERS=300 XT_LR=3e-4 TY_LR=3e-4 MINE_BATCH=200 MINE_HIDDEN=128 OUT=tradeoff \
  TRAIN_ARGS="--num_workers 0 --print_freq 1000" TRANSFER_ARGS="--batch 256"
time bash "$HERE/scripts/run_paper.sh" resnet8
echo "demo finished: demo/tradeoff.png, demo/tradeoff.md, TensorBoard: tensorboard --logdir demo/save/tensorboard"
