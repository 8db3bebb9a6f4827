"""Faults and bad input: killed runs resume to the same result, damaged files are survived,
every bad input ends in one clear line, a non-zero exit and untouched results."""
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

import fakedata
import train_vanilla
import util
from helper.results import read_results
from helper.run import checkpoint_path
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
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, exit_info.value.code, captured.out, captured.err)


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
    cross_entropy = torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy",
                        lambda logits, target, **kw: cross_entropy(logits, target, **kw) * float("nan"))
    result = in_process(train_vanilla.main, TRAIN + ["--resume"], capsys)
    line = one_line_error(result)
    assert "loss became non-finite at epoch 2, step" in line and "resnet8_last.pth" in line
    assert (data_dir / RUN / "resnet8_last.pth").read_bytes() == before
    assert not (data_dir / RUN / "ckpt_epoch_2.pth").exists()
    # The same in a fresh run's first epoch: nothing to keep, and the line says so.
    line = one_line_error(in_process(train_vanilla.main, TRAIN + ["--note", "nan_first"], capsys))
    assert "loss became non-finite at epoch 1, step" in line and "no checkpoint had been written yet" in line


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


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
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


# --------------------------------------------------------------------------- transfer on damaged run folders

import transfer  # noqa: E402
from models import build_model  # noqa: E402

PROBE = ["--source_dataset", "cifar100", "--target_dataset", "cifar10", "--model", "resnet8", "--ckpt_path", "run",
         "--start_epoch", "2", "--skip", "2", "--epoch", "1", "--batch", "16", "--device", "cpu"]


@pytest.fixture
def run_folder(tmp_path, monkeypatch):
    """./data (tiny CIFAR-10) and ./run with resnet8 checkpoints of epochs 2 and 4."""
    fakedata.write_cifar10(tmp_path / "data", n_train=20, n_test=10)
    for epoch in (2, 4):
        torch.manual_seed(epoch)
        util.atomic_save({"epoch": epoch, "model": build_model("resnet8", 100).state_dict(), "accuracy": 1.0},
                         checkpoint_path(tmp_path / "run", epoch))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "run"


def test_a_truncated_results_file_is_repaired_by_the_next_run(run_folder, capsys):
    transfer.main(PROBE)
    results = run_folder / "transfer_cifar10_train_bn.jsonl"
    first = results.read_text().splitlines()
    results.write_text(first[0] + "\n" + first[1][: len(first[1]) // 2])   # the epoch-4 row cut in half
    transfer.main(PROBE)
    out = capsys.readouterr()
    assert "not a complete result row" in out.err and "skipping epoch(s) 2" in out.out
    assert [row["epoch"] for row in read_results(results)] == [2, 4]
    assert results.read_text().splitlines()[0] == first[0]


def test_a_truncated_checkpoint_is_named_and_the_rest_still_run(run_folder, capsys):
    path = checkpoint_path(run_folder, 2)
    path.write_bytes(path.read_bytes()[:1000])
    result = in_process(transfer.main, PROBE, capsys)
    assert result.returncode != 0 and "ckpt_epoch_2.pth cannot be read" in result.stderr
    assert [row["epoch"] for row in read_results(run_folder / "transfer_cifar10_train_bn.jsonl")] == [4]


@pytest.mark.parametrize("change, message", [
    (["--start_epoch", "3", "--skip", "4"], "no checkpoint in run matches --start_epoch 3 --skip 4"),
    (["--model", "wrn_16_1"], "does not fit wrn_16_1: missing"),
    (["--target_dataset", "imagenet"], "unknown data set 'imagenet'"),
    (["--batch", "0"], "argument --batch: must be positive"),
])
def test_bad_transfer_input_is_one_line_and_keeps_results(run_folder, capsys, change, message):
    transfer.main(PROBE)
    results = run_folder / "transfer_cifar10_train_bn.jsonl"
    before = results.read_bytes()
    argv = PROBE + change
    if change[0] == "--model":   # a different architecture reads the same checkpoints: nothing is skipped
        argv += ["--results", str(run_folder / "other.jsonl")]
    result = in_process(transfer.main, argv, capsys)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert results.read_bytes() == before


def test_the_truncated_checkpoint_message_names_the_fault_in_whole(run_folder, capsys):
    path = checkpoint_path(run_folder, 2)
    path.write_bytes(path.read_bytes()[:1000])
    line = in_process(transfer.main, PROBE, capsys).stderr.splitlines()[0]
    assert line.endswith("failed reading zip archive: failed finding central directory"), line


def test_a_model_typo_is_named_before_any_results_file_is_read(run_folder, capsys):
    transfer.main(PROBE)  # rows of resnet8: the old order blamed them for the typo and advised --force
    line = one_line_error(in_process(transfer.main, PROBE + ["--model", "resnet88"], capsys))
    assert "unknown model 'resnet88'" in line and "--force" not in line


@pytest.mark.parametrize("content", ["| epoch | acc |\n|---|---|\n| 2 | 0.5 |\n",
                                     '{"epoch": 2}\nnot json\n{"epoch": 4}\n'])
def test_a_results_file_with_foreign_lines_is_refused_not_rewritten(run_folder, capsys, content):
    notes = run_folder.parent / "notes.md"
    notes.write_text(content)
    line = one_line_error(in_process(transfer.main, PROBE + ["--results", str(notes)], capsys))
    assert "notes.md:" in line and "is not a result row" in line
    assert notes.read_text() == content


@pytest.mark.parametrize("where, message", [("folder", "is a folder"), ("unwritable", "cannot write results")])
def test_a_results_path_that_cannot_be_written_is_refused_before_any_work(run_folder, capsys, where, message):
    path = run_folder.parent / "out"
    if where == "folder":
        path.mkdir()
    else:
        path.write_text("")  # a file where the results file's folder should be
        path = path / "results.jsonl"
    result = in_process(transfer.main, PROBE + ["--results", str(path)], capsys)
    assert message in one_line_error(result)
    assert "Source Epoch" not in result.stdout  # refused before the first probe
    assert sorted(p.name for p in run_folder.parent.iterdir()) == ["data", "out", "run"]  # and nothing created


def test_calibration_refuses_a_foreign_results_file_before_estimating(tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("# not results\n")
    result = in_process(mine.main, ["--calibrate", "gaussian", "--true_mi", "1", "--iter_num", "5", "--batch_size",
                                    "8", "--hidden_size", "4", "--calibrate_rows", "16", "--device", "cpu",
                                    "--results", str(notes)], capsys)
    assert "is not a result row" in one_line_error(result) and "MINE calibration" not in result.stdout
    assert notes.read_text() == "# not results\n"


def test_force_with_other_settings_on_some_checkpoints_is_refused_instead_of_mixing(run_folder, capsys):
    transfer.main(PROBE)
    results = run_folder / "transfer_cifar10_train_bn.jsonl"
    before = results.read_bytes()
    later = list(PROBE)
    later[later.index("--start_epoch") + 1] = "4"  # epoch 2's old row would stay beside epoch 4's new one
    line = one_line_error(in_process(transfer.main, later + ["--lr", "0.1", "--force"], capsys))
    assert "epoch 2 made with other settings: lr 0.4 (now 0.1)" in line and "not among them" in line
    assert results.read_bytes() == before
    # Shards of one forced rerun together replace every row: each may run, one after the other.
    for shard in ("0/2", "1/2"):
        transfer.main(PROBE + ["--lr", "0.1", "--force", "--shard", shard])
    assert [(row["epoch"], row["lr"]) for row in read_results(results)] == [(2, 0.1), (4, 0.1)]


def test_a_renamed_run_folder_keeps_its_results_file_and_force_redoes_it(run_folder, capsys):
    transfer.main(PROBE)
    run_folder.rename(run_folder.with_name("renamed"))
    renamed = [arg if arg != "run" else "renamed" for arg in PROBE]
    line = one_line_error(in_process(transfer.main, renamed, capsys))
    assert "made with other settings: run run (now renamed)" in line and "--force" in line
    transfer.main(renamed + ["--force"])
    rows = read_results(run_folder.with_name("renamed") / "transfer_cifar10_train_bn.jsonl")
    assert [(row["epoch"], row["run"]) for row in rows] == [(2, "renamed"), (4, "renamed")]


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    # In a process of its own, as a shell runs a script: an uncaught interrupt must not reach pytest.
    code = "import util\ndef main():\n    raise KeyboardInterrupt\nutil.run_main(main)\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True,
                            timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 130 and len(lines) == 1 and lines[0].startswith("interrupted: "), result.stderr


def test_a_missing_data_root_is_not_left_behind_as_an_empty_folder(tmp_path, monkeypatch, capsys):
    import dataset.common

    def offline(url, download_root, md5):  # as torchvision does: the folder first, then the failed fetch
        os.makedirs(download_root, exist_ok=True)
        raise OSError("Name or service not known")
    monkeypatch.setattr(dataset.common, "download_and_extract_archive", offline)
    monkeypatch.chdir(tmp_path)
    line = one_line_error(in_process(train_vanilla.main, TRAIN + ["--data_root", "no/data"], capsys))
    assert "CIFAR-100 not found" in line and not (tmp_path / "no").exists()
    (tmp_path / "mine").mkdir()  # a folder the user had stays, even empty
    one_line_error(in_process(train_vanilla.main, TRAIN + ["--data_root", "mine/data"], capsys))
    assert (tmp_path / "mine").is_dir() and not (tmp_path / "mine" / "data").exists()


def test_an_empty_run_folder_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "save/model/empty").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    line = one_line_error(in_process(transfer.main, PROBE[:7] + ["empty"], capsys))
    assert "holds no ckpt_epoch_*.pth" in line


# --------------------------------------------------------------------------- MINE bad input

import mine  # noqa: E402

ESTIMATE = ["--mode", "xt", "--model", "resnet8", "--dataset", "cifar10", "--source_dataset", "cifar100",
            "--ckpt_path", "run", "--start_epoch", "2", "--skip", "2", "--iter_num", "5", "--batch_size", "8",
            "--hidden_size", "8", "--device", "cpu"]


@pytest.mark.parametrize("change, message", [
    (["--iter_num", "0"], "argument --iter_num: must be positive"),
    (["--iter_num", "-5"], "argument --iter_num: must be positive"),
    (["--start_epoch", "5", "--skip", "10"], "no checkpoint in run matches"),
    (["--model", "vgg8"], "does not fit vgg8"),
])
def test_bad_mine_input_is_reported_and_keeps_results(run_folder, capsys, change, message):
    mine.main(ESTIMATE)
    results = run_folder / "mine_xt_cifar10.jsonl"
    before = results.read_bytes()
    result = in_process(mine.main, ESTIMATE + change + ["--force"], capsys)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert results.read_bytes() == before


def test_rerun_with_other_settings_is_refused_instead_of_mixing_rows(run_folder, capsys):
    transfer.main(PROBE)
    results = run_folder / "transfer_cifar10_train_bn.jsonl"
    before = results.read_bytes()
    result = in_process(transfer.main, PROBE + ["--lr", "0.1"], capsys)
    line = one_line_error(result)
    assert "made with other settings: lr 0.4 (now 0.1)" in line and "--force" in line
    assert results.read_bytes() == before
    transfer.main(PROBE + ["--lr", "0.1", "--force"])
    assert {row["lr"] for row in read_results(results)} == {0.1}


# --------------------------------------------------------------------------- CTC resume across the stage switch

import train_ctc  # noqa: E402
from helper import loops  # noqa: E402

CTC = ["--epochs", "3", "--stage_two_epoch", "2", "--model", "resnet8", "--batch_size", "32", "--num_workers", "0",
       "--save_freq", "1", "--nce_k", "16", "--update_memory_bank", "--print_freq", "1000", "--note", "r"]
CTC_RUN = "save/model/resnet8_cifar100_a:0.5_b:1.0_r"


def test_ctc_killed_in_stage_two_resumes_to_the_uninterrupted_state(tmp_path, monkeypatch):
    for name in ("whole", "crashed"):
        fakedata.write_cifar100(tmp_path / name / "data", n_train=96, n_test=32)
    monkeypatch.chdir(tmp_path / "whole")
    train_ctc.main(CTC)

    # the crash: epoch 3 (stage 2, after the switch and the memory refresh) dies before it is saved
    monkeypatch.chdir(tmp_path / "crashed")
    validate, calls = loops.validate, []

    def dies_in_epoch_three(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return validate(*args, **kwargs)
    monkeypatch.setattr(loops, "validate", dies_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train_ctc.main(CTC)
    monkeypatch.setattr(loops, "validate", validate)
    assert util.load_checkpoint(tmp_path / "crashed" / CTC_RUN / "resnet8_last.pth")["epoch"] == 2
    train_ctc.main(CTC + ["--resume"])

    whole, resumed = (util.load_checkpoint(tmp_path / name / CTC_RUN / "resnet8_last.pth") for name in ("whole", "crashed"))
    for part in ("instance", "ctc", "info_bank"):
        for key, value in whole["method"][part].items():
            assert torch.equal(value, resumed["method"][part][key]), (part, key)
    assert all(torch.equal(value, resumed["model"][key]) for key, value in whole["model"].items())
    # Resumed once more, the finished run has nothing to do: it reads no data and writes nothing.
    shutil.rmtree(tmp_path / "crashed" / "data")
    before = {path: path.stat().st_mtime_ns for path in (tmp_path / "crashed" / "save").rglob("*")}
    train_ctc.main(CTC + ["--resume"])
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "crashed" / "save").rglob("*")} == before


# --------------------------------------------------------------------------- impossible settings

def test_a_stage_two_epoch_not_below_epochs_is_one_line(data_dir, monkeypatch, capsys):
    monkeypatch.chdir(data_dir)
    for stage_two in ("3", "5"):   # CTC trains 3 epochs: stage 2 would be empty
        line = one_line_error(in_process(train_ctc.main, CTC + ["--stage_two_epoch", stage_two], capsys))
        assert f"--stage_two_epoch ({stage_two}) must be smaller than --epochs (3)" in line
    assert not (data_dir / "save").exists()


@pytest.mark.parametrize("flags, message", [
    (["--eval_fraction", "1"], "--eval_fraction must be in [0, 1), got 1.0"),
    (["--eval_fraction", "-0.1"], "--eval_fraction must be in [0, 1), got -0.1"),
    (["--calibrate", "gaussian", "--rho", "0.5", "1.0"], "--rho values must lie strictly between -1 and 1"),
    (["--calibrate", "gaussian", "--rho", "-1.5"], "--rho values must lie strictly between -1 and 1"),
])
def test_mine_fractions_and_correlations_out_of_range_are_one_line(run_folder, capsys, flags, message):
    line = one_line_error(in_process(mine.main, ESTIMATE + flags, capsys))
    assert message in line
    assert not list(run_folder.glob("*.jsonl"))


@pytest.mark.parametrize("main, argv", [(train_vanilla.main, TRAIN), (train_ctc.main, CTC)])
def test_a_batch_not_divisible_by_the_training_processes_is_one_line(data_dir, monkeypatch, capsys, main, argv):
    # As if started by torchrun with three processes: each needs an equal share of --batch_size.
    import helper.session
    monkeypatch.setattr(helper.session, "init_distributed", lambda device: (0, 3, torch.device("cpu")))
    monkeypatch.chdir(data_dir)
    line = one_line_error(in_process(main, argv + ["--batch_size", "16"], capsys))
    assert line == "error: --batch_size 16 must be divisible by the 3 training processes"
    assert not (data_dir / "save").exists()
