"""scripts/run_paper.sh end to end at toy size, and what a second run asks of each script.

The first run is real: every script runs in a process of its own, as from a shell. The
second run only records the command lines the pipeline gives (a recording stand-in for
Python, which still answers the pipeline's run-name questions): that a script called with
them again does no work is tested in-process, far cheaper than fifteen more processes --
a finished training run resumed again (tests/test_train.py, tests/test_faults.py), a
transfer or MINE call whose checkpoints are all in its results file (tests/test_transfer.py,
tests/test_mine_script.py). What only the pipeline decides is checked here: the trainings
are resumed (--resume, once their last checkpoint exists) and everything else is asked
again with the same arguments.

Every Python process of the pipeline is forked from one that has already imported torch and
the scripts (tests/warm_python.py): each still runs as a process of its own, with the shell's
arguments, environment, working directory and output, without importing torch twenty times.
"""
import hashlib
import os
import shlex
import subprocess
import sys

import fakedata

from tests import warm_python
from tests.conftest import ROOT

TINY = {"EPOCHS": "2", "CTC_EPOCHS": "2", "STAGE_TWO": "1", "SAVE_FREQ": "1", "START": "1", "SKIP": "1",
        "PROBE_EPOCHS": "1", "XT_ITERS": "20", "TY_ITERS": "20", "MINE_BATCH": "16", "MINE_HIDDEN": "16",
        "NCE_K": "8", "TRAIN_ARGS": "--num_workers 0 --batch_size 16 --note toy", "TRANSFER_ARGS": "--batch 32",
        "OUT": "figure", "OMP_NUM_THREADS": "1"}

# PYTHON for the pipeline: appends its command line to $CALLS, then runs Python -- every call
# (RECORD_ONLY empty) or only the inline run-name questions (`python -c ...`) -- in a child of
# the warm server.
RECORDER = """#!/usr/bin/env bash
printf '%q ' "$@" >> "$CALLS"
echo >> "$CALLS"
if [ -z "$RECORD_ONLY" ] || [ "$1" = "-c" ]; then exec "$REAL_PYTHON" "$WARM" call "$SOCKET" "$@"; fi
"""
WARM = ROOT / "tests/warm_python.py"


def _results(folder):
    """Checksums of every checkpoint and result file the pipeline writes."""
    files = [p for p in (folder / "save/model").rglob("*") if p.suffix in (".pth", ".jsonl", ".csv")]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _run(folder, record_only):
    calls = folder / f"calls_{'rerun' if record_only else 'first'}.txt"
    env = {**os.environ, **TINY, "PYTHON": str(folder / "python"), "REAL_PYTHON": sys.executable,
           "CALLS": str(calls), "RECORD_ONLY": "1" if record_only else "", "WARM": str(WARM), "SOCKET": warm_python.server_socket()}
    result = subprocess.run(["bash", str(ROOT / "scripts/run_paper.sh"), "resnet8"], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=400)
    return result, [shlex.split(line) for line in calls.read_text().splitlines() if not line.startswith("-c ")]


def _by_script(calls):
    scripts = {}
    for call in calls:
        scripts.setdefault(os.path.basename(call[0]), []).append(call[1:])
    return scripts


def test_run_paper_completes_and_a_rerun_resumes_the_trainings_and_asks_the_same_of_the_rest(tmp_path):
    fakedata.write_cifar100(tmp_path / "data", n_train=64, n_test=32)
    fakedata.write_image_folder(tmp_path / "data/CINIC-10", fakedata.CINIC10_CLASSES, 2, seed=1)
    (tmp_path / "python").write_text(RECORDER)
    (tmp_path / "python").chmod(0o755)
    first, first_calls = _run(tmp_path, record_only=False)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    written = _results(tmp_path)
    # --note in TRAIN_ARGS renames both run folders: transfer and MINE must follow them there.
    for run in ("resnet8_cifar100_lr_0.05_trial_0_toy", "resnet8_cifar100_a:0.5_b:1.0_toy"):
        names = {name.split("/")[-1] for name in written if f"/{run}/" in name}
        assert {"ckpt_epoch_1.pth", "ckpt_epoch_2.pth", "transfer_cinic10_train_bn.jsonl", "mine_xt_cifar100.jsonl",
                "mine_ty_cifar100.jsonl", "mine_xt_cinic10.jsonl", "mine_ty_cinic10.jsonl",
                "geometry_cifar100.jsonl", "geometry_cinic10.jsonl"} <= names
    assert first.stdout.count("I(X;T) of resnet8 of 2-th epoch is : ") == 4   # 2 runs x 2 data sets
    assert first.stdout.count("Source Epoch: 2, Target Epoch: 1, Best Acc: ") == 2
    assert (tmp_path / "figure.png").stat().st_size > 0 and (tmp_path / "figure.md").is_file()
    logs = {p.name for p in (tmp_path / "save/logs/resnet8").iterdir()}
    assert "train_vanilla.log" in logs and "plot.log" in logs and len(logs) == 17

    second, second_calls = _run(tmp_path, record_only=True)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _results(tmp_path) == written  # the pipeline itself deletes or rewrites nothing
    first_scripts, second_scripts = _by_script(first_calls), _by_script(second_calls)
    assert {name: len(calls) for name, calls in first_scripts.items()} == {
        "train_vanilla.py": 1, "train_ctc.py": 1, "transfer.py": 2, "mine.py": 8, "geometry.py": 4,
        "plot_tradeoff.py": 1}
    for name in ("train_vanilla.py", "train_ctc.py"):
        assert "--resume" not in first_scripts[name][0]
        assert second_scripts[name] == [first_scripts[name][0] + ["--resume"]]
    for name in ("transfer.py", "mine.py", "geometry.py", "plot_tradeoff.py"):
        assert second_scripts[name] == first_scripts[name]
