#!/usr/bin/env bash
# The paper's whole analysis for one architecture: train vanilla and CTC, transfer every
# checkpoint to the target data set, the four MINE estimates per checkpoint (I(X;T) and
# I(T;Y) on the source and on the target data set) and the features' geometry and
# noisy-feature information on both (geometry.py), then the trade-off figure.
#
#   bash scripts/run_paper.sh resnext32_16x4d
#
# Resumable: a finished step is skipped on a rerun (training resumes from its last
# checkpoint, transfer and MINE skip checkpoints already in their results files), so the
# same command picks up after a crash. Every step's output is appended to
# save/logs/<model>/<step>.log. Environment variables shrink it (the demo uses them):
#   EPOCHS (200) CTC_EPOCHS (300) STAGE_TWO (200) SAVE_FREQ (2) START (2) SKIP (2)
#   SOURCE (cifar100) TARGET (cinic10) PROBE_EPOCHS (30) XT_ITERS (1e+4) TY_ITERS (2e+4)
#   XT_LR (8e-5) TY_LR (1e-5) MINE_BATCH (5000) MINE_HIDDEN (1024) NCE_K (16384) PYTHON (python)
#   TRAIN_ARGS, TRANSFER_ARGS, MINE_ARGS, GEOMETRY_ARGS: extra flags for every call of that script
#   OUT: prefix of the figure and table (save/tradeoff_<model>)
set -euo pipefail

MODEL=${1:?usage: scripts/run_paper.sh MODEL}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
EPOCHS=${EPOCHS:-200} CTC_EPOCHS=${CTC_EPOCHS:-300} STAGE_TWO=${STAGE_TWO:-200}
SAVE_FREQ=${SAVE_FREQ:-2} START=${START:-2} SKIP=${SKIP:-2}
SOURCE=${SOURCE:-cifar100} TARGET=${TARGET:-cinic10} PROBE_EPOCHS=${PROBE_EPOCHS:-30}
XT_ITERS=${XT_ITERS:-1e+4} TY_ITERS=${TY_ITERS:-2e+4} XT_LR=${XT_LR:-8e-5} TY_LR=${TY_LR:-1e-5}
MINE_BATCH=${MINE_BATCH:-5000} MINE_HIDDEN=${MINE_HIDDEN:-1024}
NCE_K=${NCE_K:-16384}
read -r -a TRAIN_EXTRA <<< "${TRAIN_ARGS:-}"
read -r -a TRANSFER_EXTRA <<< "${TRANSFER_ARGS:-}"
read -r -a MINE_EXTRA <<< "${MINE_ARGS:-}"
read -r -a GEOMETRY_EXTRA <<< "${GEOMETRY_ARGS:-}"
LOGS=save/logs/$MODEL
mkdir -p "$LOGS"

step() {  # step NAME COMMAND...: run it, append its output to the step's log, stop the pipeline if it fails
  local name=$1; shift
  echo "==> $name" | tee -a "$LOGS/$name.log"
  echo "# $(date -u +%FT%TZ) $*" >> "$LOGS/$name.log"
  "$@" 2>&1 | tee -a "$LOGS/$name.log"
}

run_name() {  # run_name SCRIPT ARGS...: the run folder SCRIPT trains into with these arguments
  "$PYTHON" -c 'import importlib, sys; sys.path.insert(0, sys.argv[1]); script = importlib.import_module(sys.argv[2])
print(script.run_name(script.parse_option(sys.argv[3:])))' "$HERE" "$@"
}

resume_flag() {  # --resume when the run folder already holds a resumable checkpoint
  [ -f "save/model/$1/${MODEL}_last.pth" ] && echo --resume || true
}

VANILLA_ARGS=(--epochs "$EPOCHS" --dataset "$SOURCE" --model "$MODEL" --weight_decay 0.0005 --momentum 0.9
  --learning_rate 0.05 --batch_size 64 --save_freq "$SAVE_FREQ" --note vanilla "${TRAIN_EXTRA[@]}")
CTC_ARGS=(--epochs "$CTC_EPOCHS" --dataset "$SOURCE" --model "$MODEL" --momentum 0.9 --learning_rate 0.05
  --batch_size 64 --weight_decay 0.0005 --weight_decay_coef 2.0 --stage_two_epoch "$STAGE_TWO" -a 0.5 -b 1.0
  --instance_t 0.10 --instance_m 0.9 --nce_t 0.10 --nce_m 0.9 --nce_k "$NCE_K" --update_memory_bank
  --save_freq "$SAVE_FREQ" --note ctc "${TRAIN_EXTRA[@]}")
# Asked of the training scripts, so that TRAIN_ARGS such as --trial or --note cannot send
# transfer and MINE to another folder than the one trained.
VANILLA=$(run_name train_vanilla "${VANILLA_ARGS[@]}")
CTC=$(run_name train_ctc "${CTC_ARGS[@]}")

step train_vanilla "$PYTHON" "$HERE/train_vanilla.py" "${VANILLA_ARGS[@]}" $(resume_flag "$VANILLA")
step train_ctc "$PYTHON" "$HERE/train_ctc.py" "${CTC_ARGS[@]}" $(resume_flag "$CTC")

for RUN in "$VANILLA" "$CTC"; do
  step "transfer_${RUN}" "$PYTHON" "$HERE/transfer.py" --source_dataset "$SOURCE" --target_dataset "$TARGET" \
    --model "$MODEL" --ckpt_path "$RUN" --start_epoch "$START" --skip "$SKIP" --epoch "$PROBE_EPOCHS" \
    "${TRANSFER_EXTRA[@]}"
  for DATASET in "$SOURCE" "$TARGET"; do
    step "geometry_${DATASET}_${RUN}" "$PYTHON" "$HERE/geometry.py" --model "$MODEL" --dataset "$DATASET" \
      --source_dataset "$SOURCE" --ckpt_path "$RUN" --start_epoch "$START" --skip "$SKIP" "${GEOMETRY_EXTRA[@]}"
    step "mine_xt_${DATASET}_${RUN}" "$PYTHON" "$HERE/mine.py" --mode xt --model "$MODEL" --dataset "$DATASET" \
      --source_dataset "$SOURCE" --ckpt_path "$RUN" --lr "$XT_LR" --iter_num "$XT_ITERS" --start_epoch "$START" \
      --skip "$SKIP" --batch_size "$MINE_BATCH" --hidden_size "$MINE_HIDDEN" "${MINE_EXTRA[@]}"
    step "mine_ty_${DATASET}_${RUN}" "$PYTHON" "$HERE/mine.py" --mode ty --model "$MODEL" --dataset "$DATASET" \
      --source_dataset "$SOURCE" --ckpt_path "$RUN" --lr "$TY_LR" --iter_num "$TY_ITERS" --start_epoch "$START" \
      --skip "$SKIP" --batch_size "$MINE_BATCH" --hidden_size "$MINE_HIDDEN" "${MINE_EXTRA[@]}"
  done
done

step plot "$PYTHON" "$HERE/scripts/plot_tradeoff.py" "$VANILLA" "$CTC" --out "${OUT:-save/tradeoff_$MODEL}"
