"""mine.py end to end on tiny data: printed lines, result rows, TensorBoard curves, reruns,
shards, batched checkpoints, unreadable checkpoints and the Gaussian calibration.

Three resnet8 checkpoints (random weights, 100 classes) of a fake CIFAR-100 run are
estimated with a small critic for 50 iterations, so each run takes a second or two.
"""
import math
import re

import pytest
import torch

import helper.mine.critic
import mine
import util
from helper.mine.calibration import rho_for_mi
from helper.results import read_results
from helper.run import checkpoint_path
from models import build_model
from tests import fakedata
from tests import warm_python
from tests.conftest import ROOT

RUN_NAME = "resnet8_cifar100_lr_0.05_trial_0_vanilla"
EPOCHS = (2, 4, 6)
TINY = ["--model", "resnet8", "--ckpt_path", RUN_NAME, "--start_epoch", "2", "--skip", "2", "--iter_num", "50",
        "--lr", "1e-3", "--batch_size", "64", "--hidden_size", "32", "--device", "cpu"]
XT = ["--mode", "xt", "--dataset", "cifar100"] + TINY
TY = ["--mode", "ty", "--dataset", "cinic10"] + TINY


def line_pattern(name):
    return re.compile(r"^" + re.escape(name) + r" of resnet8 of (\d+)-th epoch is : (\S+)$")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path with ./data (fake CIFAR-100 and CINIC-10) and a run folder holding epochs 2, 4, 6."""
    fakedata.write_cifar100(tmp_path / "data", n_train=10, n_test=160, seed=0)
    fakedata.write_image_folder(tmp_path / "data" / "CINIC-10", list(fakedata.CINIC10_CLASSES), 12,
                                splits=("train", "valid"))
    folder = tmp_path / "save" / "model" / RUN_NAME
    for epoch in EPOCHS:
        torch.manual_seed(epoch)
        util.atomic_save({"epoch": epoch, "model": build_model("resnet8", 100).state_dict(), "accuracy": 1.0},
                         checkpoint_path(folder, epoch))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def results_file(workdir, mode, dataset):
    return workdir / "save" / "model" / RUN_NAME / f"mine_{mode}_{dataset}.jsonl"


def printed(text, name):
    return [(int(m.group(1)), m.group(2)) for line in text.splitlines() if (m := line_pattern(name).match(line))]


def tensorboard(workdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(workdir / "save" / "tensorboard" / RUN_NAME), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {event.step: event.value for event in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def run_script(workdir, *args):
    return warm_python.run([ROOT / "mine.py", *args], cwd=workdir)


# --------------------------------------------------------------------------- command line

def test_the_readme_commands_parse_with_the_reference_settings():
    xt = mine.parse_option(["--mode", "xt", "--model", "resnext32_16x4d", "--dataset", "cifar100", "--ckpt_path",
                            "run", "--lr", "8e-5", "--iter_num", "1e+4", "--start_epoch", "2", "--skip", "2"])
    ty = mine.parse_option(["--mode", "ty", "--model", "resnext32_16x4d", "--dataset", "cinic10", "--ckpt_path",
                            "run", "--lr", "1e-5", "--iter_num", "2e+4", "--start_epoch", "2", "--skip", "2"])
    assert (xt.lr, xt.iter_num, xt.batch_size, xt.hidden_size) == (8e-5, 10000, 5000, 1024)
    assert (ty.lr, ty.iter_num, ty.source_dataset) == (1e-5, 20000, "cifar100")
    assert not (xt.early_stop or xt.amp or xt.force) and xt.eval_fraction == 0 and xt.batch_ckpts == 4
    defaults = mine.parse_option(["--mode", "ty", "--ckpt_path", "run"])
    assert (defaults.lr, defaults.iter_num, defaults.batch_ckpts) == (1e-5, 20000, 8)


def test_xt_prints_the_reference_line_writes_rows_and_curves_and_skips_on_rerun(workdir, capsys):
    mine.main(XT)
    out = capsys.readouterr().out
    lines = printed(out, "I(X;T)")
    rows = read_results(results_file(workdir, "xt", "cifar100"))
    assert [epoch for epoch, _ in lines] == [row["epoch"] for row in rows] == list(EPOCHS)
    for (_, value), row in zip(lines, rows):
        assert value == repr(row["estimate"]) and math.isfinite(row["estimate"])
        # the three checkpoints fit one batch of the default --batch_ckpts 4
        assert (row["mode"], row["dataset"], row["iterations"], row["lr"], row["batch_ckpts"]) == ("xt", "cifar100", 50, 1e-3, 3)
        assert row["seconds"] > 0 and row["amp"] is False and row["heldout_estimate"] is None
        assert row["status"] == row["diagnostics"]["status"] in ("converged", "rising", "diverging")
    scalars = tensorboard(workdir)
    assert scalars["mine/I(X;T)_cifar100"] == pytest.approx({row["epoch"]: row["estimate"] for row in rows})
    bound, smoothed = scalars["mine_curve/epoch_4/I(X;T)_cifar100_bound"], scalars["mine_curve/epoch_4/I(X;T)_cifar100_smoothed"]
    assert sorted(bound) == sorted(smoothed) == list(range(1, 51))
    assert smoothed[50] == pytest.approx(rows[1]["estimate"], abs=1e-5)

    before = results_file(workdir, "xt", "cifar100").read_text()
    mine.main(XT)
    out = capsys.readouterr().out
    assert printed(out, "I(X;T)") == [] and "nothing to do" in out
    assert results_file(workdir, "xt", "cifar100").read_text() == before

    mine.main(XT + ["--force", "--start_epoch", "4", "--skip", "100"])
    assert [epoch for epoch, _ in printed(capsys.readouterr().out, "I(X;T)")] == [4]
    rerun = read_results(results_file(workdir, "xt", "cifar100"))
    assert [row["epoch"] for row in rerun] == list(EPOCHS)              # replaced, not appended
    # same seed, same number, whether estimated alone or in a batch of three
    assert rerun[1]["batch_ckpts"] == 1 and rerun[1]["estimate"] == pytest.approx(rows[1]["estimate"], abs=1e-6)
    assert rerun[0] == rows[0] and rerun[2] == rows[2]


def test_ty_on_cinic10_of_cifar100_checkpoints_stays_below_log_classes(workdir, capsys):
    mine.main(TY + ["--iter_num", "150"])
    rows = read_results(results_file(workdir, "ty", "cinic10"))
    assert [epoch for epoch, _ in printed(capsys.readouterr().out, "I(T;Y)")] == [row["epoch"] for row in rows] == list(EPOCHS)
    for row in rows:
        assert row["source_dataset"] == "cifar100" and row["mode"] == "ty"
        assert row["estimate"] < math.log(10) + 0.1


def test_shards_cover_every_checkpoint_exactly_once(workdir):
    seen = []
    for shard in ("0/2", "1/2"):
        path = workdir / f"shard{shard[0]}.jsonl"
        mine.main(XT + ["--shard", shard, "--results", str(path)])
        seen.append([row["epoch"] for row in read_results(path)])
    assert seen == [[2, 6], [4]]


def test_batched_checkpoints_give_a_row_each_and_held_out_estimates(workdir, capsys):
    mine.main(XT + ["--batch_ckpts", "2", "--eval_fraction", "0.25"])
    rows = read_results(results_file(workdir, "xt", "cifar100"))
    assert [row["epoch"] for row in rows] == list(EPOCHS) and [row["batch_ckpts"] for row in rows] == [2, 2, 1]
    assert all(math.isfinite(row["heldout_estimate"]) and row["eval_fraction"] == 0.25 for row in rows)
    assert all(row["diagnostics"]["overfitting"] in (True, False) for row in rows)
    out = capsys.readouterr().out
    assert len(printed(out, "I(X;T)")) == 3 and out.count("held-out ") == 3
    heldout = tensorboard(workdir)["mine_curve/epoch_2/I(X;T)_cifar100_heldout"]
    assert heldout == pytest.approx({50: rows[0]["heldout_estimate"]})


def recording(monkeypatch, module, name):
    """Calls of the estimator `module.name`, each still computed."""
    calls, real = [], getattr(module, name)

    def record(a, b, **options):
        calls.append(options)
        return real(a, b, **options)

    monkeypatch.setattr(module, name, record)
    return calls


def test_early_stop_and_eval_fraction_reach_the_estimator(workdir, monkeypatch):
    # What early stopping does is tested on the estimator (tests/test_mine.py); here: the flags arrive.
    calls = recording(monkeypatch, helper.mine.critic, "estimate_mi_batched")
    mine.main(XT + ["--early_stop", "--eval_fraction", "0.25", "--start_epoch", "4", "--skip", "100"])
    assert [(c["early_stop"], c["eval_fraction"], c["iters"], c["lr"], c["batch_size"], c["hidden_size"])
            for c in calls] == [(True, 0.25, 50, 1e-3, 64, 32)]
    row, = read_results(results_file(workdir, "xt", "cifar100"))
    assert row["early_stop"] and row["diagnostics"]["stopped_early"] is False  # 50 iterations: too few to stop


def test_a_corrupt_checkpoint_is_named_the_others_still_run_and_the_exit_is_non_zero(workdir):
    corrupt = checkpoint_path(workdir / "save" / "model" / RUN_NAME, 4)
    corrupt.write_bytes(b"PK\x03\x04 not really a zip file")
    done = run_script(workdir, *XT)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.count(corrupt.name) == 1
    assert [epoch for epoch, _ in printed(done.stdout, "I(X;T)")] == [2, 6]
    assert [row["epoch"] for row in read_results(results_file(workdir, "xt", "cifar100"))] == [2, 6]


def test_a_checkpoint_with_non_finite_features_is_named_and_skipped(workdir, capsys):
    path = checkpoint_path(workdir / "save" / "model" / RUN_NAME, 6)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"]["conv1.weight"][0] = float("nan")
    util.atomic_save(checkpoint, path)
    with pytest.raises(util.UserError, match="1 of 3 checkpoint"):
        mine.main(XT)
    captured = capsys.readouterr()
    assert captured.err.count(path.name) == 1 and "non-finite features" in captured.err
    assert [row["epoch"] for row in read_results(results_file(workdir, "xt", "cifar100"))] == [2, 4]


def test_bad_flags_end_in_one_line(workdir):
    for args, message in ((["--mode", "xt"], "--ckpt_path is required"),
                          (XT + ["--batch_size", "1000"], "--batch_size 1000 is larger than the 160 rows"),
                          (["--calibrate", "gaussian", "--rho", "0.5", "--true_mi", "1"], "exactly one of --rho")):
        with pytest.raises(util.UserError, match=message):
            mine.main(args)


# --------------------------------------------------------------------------- calibration

def test_calibration_prints_estimates_close_to_the_truth(workdir, capsys):
    mine.main(["--calibrate", "gaussian", "--dim", "2", "--true_mi", "0.5", "1.5", "--iter_num", "800", "--lr", "1e-3",
               "--batch_size", "256", "--hidden_size", "64", "--calibrate_rows", "2000", "--device", "cpu",
               "--results", "calibration.jsonl"])
    out = capsys.readouterr().out
    table = [line.split() for line in out.splitlines() if re.match(r"^\s+\d+\.\d{4}\s", line)]
    assert [float(row[0]) for row in table] == [0.5, 1.5]
    for row in table:
        truth, estimate = float(row[0]), float(row[4])
        assert row[1] == f"{rho_for_mi(truth, 2):.4f}"
        assert abs(estimate - truth) < 0.15 * truth
    stored = read_results(workdir / "calibration.jsonl")
    assert [row["true_mi"] for row in stored] == [0.5, 1.5]
    assert [round(row["estimate"], 4) for row in stored] == [float(row[4]) for row in table]
    mine.main(["--calibrate", "gaussian", "--dim", "3", "--rho", "0.5", "--iter_num", "20", "--batch_size", "64",
               "--hidden_size", "16", "--calibrate_rows", "200", "--device", "cpu"])
    row, = [line.split() for line in capsys.readouterr().out.splitlines() if re.match(r"^\s+\d+\.\d{4}\s", line)]
    assert float(row[0]) == pytest.approx(-1.5 * math.log(0.75), abs=1e-4) and row[1] == "0.5000"
