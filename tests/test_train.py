"""train_vanilla.py end to end on tiny data in the real CIFAR-100 format."""
import csv
import re
import shutil

import pytest
import torch

import fakedata
import train_vanilla
import util
from helper.loops import EpochMeters, StepOutput, vanilla_lr
from helper.run import model_folder, tensorboard_writer
from tests import warm_python
from tests.conftest import ROOT

RUN = "save/model/resnet8_cifar100_lr_0.05_trial_0_vanilla"
ARGS = ["--epochs", "2", "--dataset", "cifar100", "--model", "resnet8", "--weight_decay", "0.0005",
        "--momentum", "0.9", "--learning_rate", "0.05", "--batch_size", "64", "--save_freq", "1",
        "--note", "vanilla", "--num_workers", "0", "--print_freq", "2"]


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    fakedata.write_cifar100(tmp_path / "data", n_train=200, n_test=100)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_two_epochs_write_the_contract_files(cifar_dir, capsys):
    train_vanilla.main(ARGS)
    out = capsys.readouterr().out
    run = cifar_dir / RUN
    assert sorted(p.name for p in run.iterdir()) == [
        "args.json", "ckpt_epoch_1.pth", "ckpt_epoch_2.pth", "metrics.csv", "resnet8_best.pth", "resnet8_last.pth"]
    # one line per train epoch and one per test pass
    assert len(re.findall(r"^ \* Acc@1 \d+\.\d{3} Acc@5 \d+\.\d{3}$", out, re.M)) == 4
    assert re.search(r"^Epoch: \[1\]\[2/4\]\t", out, re.M)        # 200 images / batch 64 = 4 steps
    best = max(float(row["test_top1"]) for row in csv.DictReader(open(run / "metrics.csv")))
    assert re.search(r"^best accuracy: (\d+\.\d{3})$", out, re.M).group(1) == f"{best:.3f}"

    ckpt = util.load_checkpoint(run / "ckpt_epoch_2.pth")
    assert {"epoch", "model", "accuracy"} <= set(ckpt) and ckpt["epoch"] == 2
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[0]["lr"]) == pytest.approx(vanilla_lr(1, 0.05, 2))
    assert float(rows[1]["test_top1"]) == pytest.approx(ckpt["accuracy"])
    assert list((cifar_dir / "save/tensorboard/resnet8_cifar100_lr_0.05_trial_0_vanilla").glob("events.out.tfevents.*"))
    best = util.load_checkpoint(run / "resnet8_best.pth")
    assert best["best_acc"] == max(float(r["test_top1"]) for r in rows)


def test_resume_continues_to_the_same_final_epoch(cifar_dir, capsys):
    train_vanilla.main(ARGS[:1] + ["1"] + ARGS[2:])
    run = cifar_dir / RUN
    assert not (run / "ckpt_epoch_2.pth").exists()
    with pytest.raises(util.UserError, match="pass --resume"):   # never overwrite a run by accident
        train_vanilla.main(ARGS)
    capsys.readouterr()
    train_vanilla.main(ARGS + ["--resume"])
    assert "resuming with --epochs 1 (now 2)" in capsys.readouterr().out  # extending a run is said out loud
    assert util.load_checkpoint(run / "ckpt_epoch_2.pth")["epoch"] == 2
    assert util.load_checkpoint(run / "resnet8_last.pth")["epoch"] == 2
    assert [int(r["epoch"]) for r in csv.DictReader(open(run / "metrics.csv"))] == [1, 2]


def test_resume_refuses_other_settings_and_accepts_other_execution_flags(cifar_dir):
    train_vanilla.main(ARGS[:1] + ["1"] + ARGS[2:])
    run = cifar_dir / RUN
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    for flag, value in (("--weight_decay", "0.001"), ("--seed", "3"), ("--aug", "mine")):
        with pytest.raises(util.UserError, match=f"started with other settings: .*{flag} "):
            train_vanilla.main(ARGS + [flag, value, "--resume"])  # the last value of a flag wins
        assert {path.name: path.read_bytes() for path in run.iterdir()} == before
    # how it runs may change: here the print frequency and the loader
    train_vanilla.main(ARGS + ["--resume", "--print_freq", "1", "--loader", "gpu"])
    assert util.load_checkpoint(run / "resnet8_last.pth")["epoch"] == 2


def _run_script(args, cwd):
    return warm_python.run([ROOT / "train_vanilla.py", *args], cwd=cwd, timeout=120)


def test_missing_data_and_nothing_to_resume_give_one_line(tmp_path, cifar_dir):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    result = _run_script(ARGS + ["--dataset", "cinic10"], cwd=empty)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "CINIC-10" in result.stderr

    result = _run_script(ARGS + ["--resume"], cwd=cifar_dir)
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: --resume: nothing to resume from, {RUN}/resnet8_last.pth does not exist"
    assert not (cifar_dir / RUN / "ckpt_epoch_1.pth").exists()


def test_dataparallel_checkpoint_of_the_reference_loads(cifar_dir):
    train_vanilla.main(ARGS[:1] + ["1"] + ARGS[2:])
    state = util.load_checkpoint(cifar_dir / RUN / "ckpt_epoch_1.pth")
    wrapped = {"epoch": 1, "model": {f"module.{k}": v for k, v in state["model"].items()}}
    torch.save(wrapped, cifar_dir / "dp.pth")
    from models import build_model
    plain, from_dp = build_model("resnet8", 100).eval(), build_model("resnet8", 100).eval()
    plain.load_model(cifar_dir / RUN / "ckpt_epoch_1.pth")
    from_dp.load_model(cifar_dir / "dp.pth")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(plain(x), from_dp(x))


def test_a_fresh_start_hides_the_curves_of_an_attempt_killed_before_its_first_save(cifar_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    logs = cifar_dir / "save/tensorboard/resnet8_cifar100_lr_0.05_trial_0_vanilla"
    earlier = tensorboard_writer(cifar_dir / RUN)
    for epoch in (1, 2, 3):
        earlier.add_scalar("train/loss", 99.0, epoch)
    earlier.close()
    train_vanilla.main(ARGS)
    events = EventAccumulator(str(logs))
    events.Reload()
    losses = {event.step: event.value for event in events.Scalars("train/loss")}
    rows = list(csv.DictReader(open(cifar_dir / RUN / "metrics.csv")))
    assert losses == pytest.approx({int(row["epoch"]): float(row["train_loss"]) for row in rows})


def test_a_finished_run_resumed_again_reads_no_data_and_writes_nothing(cifar_dir, capsys):
    train_vanilla.main(ARGS)
    run = cifar_dir / RUN
    before = {path: path.stat().st_mtime_ns for path in (cifar_dir / "save").rglob("*")}
    shutil.rmtree(cifar_dir / "data")  # loading it would now fail
    capsys.readouterr()
    train_vanilla.main(ARGS + ["--resume"])
    assert f"nothing to do: {model_folder(run.name)} has trained 2 epochs\n" in capsys.readouterr().out
    # Asking for fewer epochs than were trained: no "resuming" notice, and the count is the real one.
    fewer = [arg if arg != "2" else "1" for arg in ARGS]
    train_vanilla.main(fewer + ["--resume"])
    assert capsys.readouterr().out == (f"nothing to do: {model_folder(run.name)} has trained 2 epochs "
                                       f"(--epochs 1 asks for no more)\n")
    assert {path: path.stat().st_mtime_ns for path in (cifar_dir / "save").rglob("*")} == before


def test_epoch_meters_count_top1_and_top5_in_percent():
    # Every row ranks the classes 0 > 1 > ... > 5; target k sits at rank k + 1, so top-1
    # holds one row of six and top-5 five (top-2 would hold two).
    logits = torch.tensor([[6.0, 5, 4, 3, 2, 1]]).repeat(6, 1)
    meters = EpochMeters("cpu")
    meters.update(0, StepOutput(torch.tensor(0.5), logits), torch.arange(6))
    meters.update(1, StepOutput(torch.tensor(2.0), logits[:2]), torch.tensor([0, 0]))
    averages = meters.averages()
    assert averages["top1"] == pytest.approx(100 * 3 / 8)
    assert averages["top5"] == pytest.approx(100 * 7 / 8)
    assert averages["loss"] == pytest.approx((0.5 * 6 + 2.0 * 2) / 8)  # weighted by batch size
