#!/usr/bin/env bash
# The GPU measurements of bench/BENCHMARKS.md's transfer and MINE sections in one go. Each step
# is time-limited so that one slow step cannot take the rest down; the limits add up to 740 s,
# more than one 10-minute call: on the H200 of 2026-11-28 the steps before the held-out
# calibration took about 6 minutes together, and the calibration resumes from its results file
# when the script is run again.
#
#     bash bench/run_gpu.sh [log folder]        # default: save/bench_logs
set -u
cd "$(dirname "$0")/.."
logs=${1:-save/bench_logs}
mkdir -p "$logs"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$logs/device.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$logs/device.txt"

step() {  # step NAME SECONDS COMMAND...: run COMMAND, log to NAME.log, report its exit status
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" > "$logs/$name.log" 2>&1
    echo "== $name: exit $? ($(tail -n 1 "$logs/$name.log"))"
}

# Transfer at the paper's size: the three protocols, the parts of adabn and frozen, fp32 and bf16.
step transfer_speed 190 python3 bench/transfer_speed.py --model resnext32_16x4d --train 90000 --test 90000 \
    --epochs 30 --train_bn_epochs 1 --reference_batches 3 --amp --device cuda
# BatchNorm folding: the forward pass it speeds up against the cost of building the folded copy.
step feature_speed 150 python3 bench/feature_speed.py --images 90000 --device cuda \
    --models resnext32_16x4d resnet32x4 wrn_40_2 ResNet18
# MINE: one checkpoint and four batched, fp32 and bf16, CIFAR-100 I(X;T) shapes; then where a
# lone checkpoint's iteration spends its time: host dispatch or a synchronisation (BENCHMARKS.md).
step mine_speed 80 python3 bench/mine_speed.py --amp --profile
# I(T;Y) shapes: a small first layer, so even four batched critics may be bound by dispatch.
step mine_speed_ty 40 python3 bench/mine_speed.py --size ty --batch_ckpts 8
# MINE at the reference's full size on 100-dimensional Gaussians of known MI, both protocols
# (bench/mine_calibration.py resumes an interrupted grid from its results file).
step mine_calibration 240 python3 bench/mine_calibration.py --results "$logs/mine_calibration.jsonl" --dims 100 \
    --hidden_size 1024 --batch_size 5000 --iter_num 1e+4 --lr 8e-5 --device cuda
# The tests that only run where CUDA is (the device-resident loader, CUDA-graph steps against eager ones).
step cuda_tests 40 python3 -m pytest -q -p no:cacheprovider -k cuda tests/
