"""scripts/run_paper.sh end to end at toy size, and a second run that finds nothing to do."""
import hashlib
import os
import subprocess

import fakedata
from tests.conftest import ROOT

TINY = {"EPOCHS": "2", "CTC_EPOCHS": "2", "STAGE_TWO": "1", "SAVE_FREQ": "1", "START": "1", "SKIP": "1",
        "PROBE_EPOCHS": "1", "XT_ITERS": "20", "TY_ITERS": "20", "MINE_BATCH": "16", "MINE_HIDDEN": "16",
        "NCE_K": "8", "TRAIN_ARGS": "--num_workers 0 --batch_size 16 --note toy", "TRANSFER_ARGS": "--batch 32",
        "OUT": "figure", "OMP_NUM_THREADS": "1"}


def _results(folder):
    """Checksums of every checkpoint and result file the pipeline writes."""
    files = [p for p in (folder / "save/model").rglob("*") if p.suffix in (".pth", ".jsonl", ".csv")]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _run(folder):
    env = {**os.environ, **TINY, "PYTHON": os.sys.executable}
    return subprocess.run(["bash", str(ROOT / "scripts/run_paper.sh"), "resnet8"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=400)


def test_run_paper_completes_and_a_rerun_does_no_work(tmp_path):
    fakedata.write_cifar100(tmp_path / "data", n_train=64, n_test=32)
    fakedata.write_image_folder(tmp_path / "data/CINIC-10", fakedata.CINIC10_CLASSES, 2, seed=1)
    first = _run(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    written = _results(tmp_path)
    # --note in TRAIN_ARGS renames both run folders: transfer and MINE must follow them there.
    for run in ("resnet8_cifar100_lr_0.05_trial_0_toy", "resnet8_cifar100_a:0.5_b:1.0_toy"):
        names = {name.split("/")[-1] for name in written if f"/{run}/" in name}
        assert {"ckpt_epoch_1.pth", "ckpt_epoch_2.pth", "transfer_cinic10_train_bn.jsonl", "mine_xt_cifar100.jsonl",
                "mine_ty_cifar100.jsonl", "mine_xt_cinic10.jsonl", "mine_ty_cinic10.jsonl"} <= names
    assert first.stdout.count("I(X;T) of resnet8 of 2-th epoch is : ") == 4   # 2 runs x 2 data sets
    assert (tmp_path / "figure.png").stat().st_size > 0 and (tmp_path / "figure.md").is_file()
    logs = {p.name for p in (tmp_path / "save/logs/resnet8").iterdir()}
    assert "train_vanilla.log" in logs and "plot.log" in logs and len(logs) == 13

    second = _run(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _results(tmp_path) == written                     # nothing rewritten
    assert second.stdout.count("nothing to do") == 2 + 2 + 8  # 2 trainings, 2 transfers, 8 MINE runs
    assert "Source Epoch" not in second.stdout and "-th epoch is" not in second.stdout
