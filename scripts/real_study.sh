#!/usr/bin/env bash
# The paper's whole analysis on real photographs (`make study`): CIFAR-10 split by class into
# a source task (airplane automobile bird cat deer) and a target task (dog frog horse ship
# truck); vanilla and CTC training on the source with several seeds; for every checkpoint the
# linear probe on the target (train_bn, the paper's protocol, and adabn) and MINE estimates of
# I(X;T) and I(T;Y) on the source and on the target test images; then the trade-off figure,
# the information-plane figure and the table. docs/real_study.md records what it found.
#
#   bash scripts/real_study.sh [--archive PATH]   # the CPU profile (the GPU profile when CUDA is there)
#   STUDY_PROFILE=gpu bash scripts/real_study.sh
#   STUDY_SMOKE=1 bash scripts/real_study.sh      # every step at toy size, about a minute
#   bash scripts/real_study.sh --plan             # print the plan and its time estimate only
#
# It prints its plan (sizes and estimated time) first. Everything lands in STUDY_DIR (default
# study/<profile>/ at the repository root): data/{source,target}/, save/ (run folders, TensorBoard),
# logs/<step>.log, logs/plan.txt, logs/timing.tsv, and report/real_study{.md,_tradeoff.png,
# _infoplane.png}. Resumable: rerun the same command after a crash and finished work is
# skipped. Images: the CIFAR-10 JPEG archive (--archive PATH or STUDY_ARCHIVE, default
# ../shared/data/cifar10-jpg.tar.gz), else the official CIFAR-10 download.
# Environment (sizes of scripts/real_study.py's profiles; every one can be overridden):
#   STUDY_SMOKE STUDY_PROFILE STUDY_DIR STUDY_ARCHIVE PYTHON
#   MODEL TRAIN_PER_CLASS TEST_PER_CLASS EPOCHS SAVE_FREQ SEEDS LR BATCH NCE_K PROBE_EPOCHS PROBE_BATCH
#   MINE_HIDDEN MINE_BATCH XT_ITERS TY_ITERS XT_LR TY_LR MINE_PROTOCOLS ("reference heldout") JOBS
#   TASKS (halves, coarse, pairs) METHODS ("vanilla ctc") PROBES ("train_bn adabn")
#   TRAIN_ARGS TRANSFER_ARGS MINE_ARGS GEOMETRY_ARGS: extra flags for every call of that script
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread per process: threads fight each other on a busy CPU
exec "${PYTHON:-python}" "$HERE/scripts/real_study.py" "$@"
