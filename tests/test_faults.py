"""Faults and bad input: killed runs resume to the same result, damaged files are survived,
every bad input ends in one clear line, a non-zero exit and untouched results."""
import os
import signal
import subprocess
import sys

import pytest
import torch

import fakedata
import train_vanilla
import util
from tests.conftest import ROOT

TRAIN = ["--epochs", "3", "--model", "resnet8", "--batch_size", "16", "--num_workers", "0", "--save_freq", "1",
         "--seed", "0", "--print_freq", "1", "--note", "f"]
RUN = "save/model/resnet8_cifar100_lr_0.05_trial_0_f"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def script(name, *args, cwd, timeout=180):
    return subprocess.run([sys.executable, str(ROOT / name), *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(result):
    """The run failed with exactly one line on stderr, and that line says what is wrong."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def in_process(main, argv, capsys):
    """Run a script's main() as its `__main__` does (util.run_main); return what a subprocess would."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        util.run_main(lambda: main(argv))
    return subprocess.CompletedProcess(argv, exit_info.value.code, "", capsys.readouterr().err)


@pytest.fixture
def data_dir(tmp_path):
    fakedata.write_cifar100(tmp_path / "data", n_train=96, n_test=32)
    return tmp_path


def _models(run):
    return {epoch: util.load_checkpoint(run / f"ckpt_epoch_{epoch}.pth")["model"] for epoch in (1, 2, 3)}


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_checkpoints(tmp_path):
    for name in ("whole", "killed"):
        fakedata.write_cifar100(tmp_path / name / "data", n_train=96, n_test=32)
    assert script("train_vanilla.py", *TRAIN, cwd=tmp_path / "whole").returncode == 0

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(ROOT / "train_vanilla.py"), *TRAIN], cwd=killed, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if line.startswith("Epoch: [2][3/6]"):   # half-way through epoch 2
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (killed / RUN / "ckpt_epoch_2.pth").exists()
    assert script("train_vanilla.py", *TRAIN, "--resume", cwd=killed).returncode == 0

    whole, resumed = _models(tmp_path / "whole" / RUN), _models(killed / RUN)
    for epoch in (1, 2, 3):
        assert all(torch.equal(whole[epoch][key], resumed[epoch][key]) for key in whole[epoch]), epoch
    rows = [util.read_csv(folder / RUN / "metrics.csv") for folder in (tmp_path / "whole", killed)]
    assert [r["test_top1"] for r in rows[0]] == [r["test_top1"] for r in rows[1]]


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(data_dir, monkeypatch, capsys):
    monkeypatch.chdir(data_dir)
    train_vanilla.main(TRAIN + ["--epochs", "1"])
    before = (data_dir / RUN / "resnet8_last.pth").read_bytes()
    result = in_process(train_vanilla.main, TRAIN + ["--resume", "--weight_decay", "1e30"], capsys)
    line = one_line_error(result)
    assert "loss became non-finite at epoch 2, step" in line and "resnet8_last.pth" in line
    assert (data_dir / RUN / "resnet8_last.pth").read_bytes() == before
    assert not (data_dir / RUN / "ckpt_epoch_2.pth").exists()


@pytest.mark.parametrize("flags, message", [
    (["--batch_size", "0"], "argument --batch_size: must be positive"),
    (["--epochs", "-3"], "argument --epochs: must be positive"),
    (["--model", "resnet9"], "unknown model 'resnet9'"),
    (["--dataset", "imagenet"], "unknown data set 'imagenet'"),
    (["--dataset", "cinic10"], "CINIC-10"),
])
def test_bad_training_input_is_one_line(data_dir, flags, message, monkeypatch, capsys):
    monkeypatch.chdir(data_dir)
    assert message in one_line_error(in_process(train_vanilla.main, TRAIN + flags, capsys))
    assert not (data_dir / "save" / "model").exists()


def test_bad_input_from_a_real_shell_is_one_line_too(data_dir):
    assert "unknown model 'resnet9'" in one_line_error(script("train_vanilla.py", "--model", "resnet9", cwd=data_dir))


def test_cinic10_with_a_missing_split_names_it(tmp_path, monkeypatch, capsys):
    fakedata.write_image_folder(tmp_path / "data" / "CINIC-10", fakedata.CINIC10_CLASSES, 2, splits=("train", "test"))
    monkeypatch.chdir(tmp_path)
    line = one_line_error(in_process(train_vanilla.main, TRAIN + ["--dataset", "cinic10"], capsys))
    assert "valid" in line


def test_foreign_pickle_checkpoint_is_refused_not_executed(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'owned'}",))

    path = tmp_path / "ckpt_epoch_2.pth"
    path.write_bytes(pickle.dumps({"epoch": 2, "model": Payload()}))
    with pytest.raises(util.UserError, match="ckpt_epoch_2.pth cannot be read"):
        util.load_checkpoint(path)
    assert not (tmp_path / "owned").exists()
