"""train_ctc.py under torchrun: two gloo processes on the CPU against each other, against one
process, and resumed; the per-process sampling streams of both loaders."""
import csv
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import fakedata
import train_ctc
import util
from dataset.arrays import ShardedRandomSampler, seed_worker_of_rank
from dataset.common import CIFAR100_MEAN, CIFAR100_STD
from dataset.gpu import ContrastSampler, DeviceLoader
from helper import session
from tests.conftest import ROOT

# 48 images of 48 classes: every class's other-class pool holds 47 images, and K = 47 takes all
# of them, so the negatives of a sample are one set whatever the draw; without augmentation a
# global batch is then the same data with one process or two (the order is shared).
ARGS = ["--epochs", "3", "--stage_two_epoch", "2", "--model", "resnet8", "--batch_size", "16", "--num_workers", "0",
        "--save_freq", "1", "--nce_k", "47", "--update_memory_bank", "--print_freq", "1000", "--device", "cpu",
        "--loader", "gpu", "--aug", "mine", "--note", "d"]
RUN = "save/model/resnet8_cifar100_a:0.5_b:1.0_d"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_processes(folder, *args, dumps="ranks", env=()):
    """tests/ctc_ranks.py (train_ctc.py, saving each process's state per epoch) in two processes
    with the environment torchrun gives them; started directly, which saves the launcher's
    seconds of start-up. (stdout of the first process, stderr of both, exit code of the worse.)"""
    (folder / dumps).mkdir(exist_ok=True)
    command = [sys.executable, str(ROOT / "tests" / "ctc_ranks.py"), str(folder / dumps), *ARGS, *args]
    common = {**ENV, **dict(env), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    processes = [subprocess.Popen(command, cwd=folder, env={**common, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [process.communicate(timeout=300) for process in processes]
    codes = [process.returncode for process in processes]
    return subprocess.CompletedProcess(command, max(codes, key=abs), outputs[0][0],
                                       outputs[0][1] + outputs[1][1])


def _data(folder):
    fakedata.write_cifar100(folder / "data", n_train=48, n_test=16)
    return folder


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """A two-process run killed right after training epoch 3 (stage 2), then resumed: (folder,
    the killed run, the resumed run). The killed run's per-process files of epoch 3 hold the
    state an uninterrupted run has after epoch 3; the resumed run's are in resumed/."""
    folder = _data(tmp_path_factory.mktemp("ddp"))
    killed = _two_processes(folder, env={"CTC_DIE_IN_EPOCH": "3"})
    assert killed.returncode != 0 and "interrupted" in killed.stderr, killed.stderr[-3000:]
    assert util.load_checkpoint(folder / RUN / "resnet8_last.pth")["epoch"] == 2
    resumed = _two_processes(folder, "--resume", dumps="resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return folder, killed, resumed


def _rank_states(folder, epoch, dumps="ranks"):
    return [torch.load(folder / dumps / f"rank{rank}_epoch{epoch}.pt") for rank in (0, 1)]


def _flat(state, prefix=""):
    """{'method/ctc/contrast_memory.z_student': tensor, ...} of a nested state."""
    if isinstance(state, dict):
        return {key: value for name, part in state.items() for key, value in _flat(part, f"{prefix}{name}/").items()}
    return {prefix.rstrip("/"): state}


def test_every_process_holds_the_same_memories_z_and_info_bank(two_process_run):
    folder, killed, _ = two_process_run
    for epoch in (1, 2, 3):
        first, second = (_flat(state) for state in _rank_states(folder, epoch))
        assert first.keys() == second.keys()
        assert ("method/info_bank/conv1.weight" in first) == (epoch >= 2)
        for key, value in first.items():
            # BatchNorm statistics of the live model are each process's own between broadcasts
            if not key.startswith("model/") or "running_" not in key:
                assert torch.equal(value, second[key]), (epoch, key)
    stage_one, stage_two = _flat(_rank_states(folder, 2)[0]), _flat(_rank_states(folder, 3)[0])
    # the refresh set every row of both contrast memories (random rows are not unit vectors)
    for side in ("student", "infobank"):
        norms = stage_one[f"method/ctc/contrast_memory.memory_{side}"].norm(dim=1)
        torch.testing.assert_close(norms, torch.ones(48))
        assert stage_one[f"method/ctc/contrast_memory.z_{side}"] < 0 < stage_two[f"method/ctc/contrast_memory.z_{side}"]
    # only the first process prints: one train and one test line per epoch; K = 47 repeats no negative
    assert killed.stdout.count(" * Acc@1") == 5 and "warning" not in killed.stdout


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_state(two_process_run):
    folder, _, resumed = two_process_run
    assert "==> resuming" in resumed.stdout and "==> refreshing" not in resumed.stdout
    # The resumed processes redid epoch 3 from the checkpoint of epoch 2 and reach the bits the
    # killed ones had after epoch 3 (gloo on the CPU sums in a fixed order).
    uninterrupted, again = (_flat(dict(enumerate(_rank_states(folder, 3, dumps)))) for dumps in ("ranks", "resumed"))
    assert uninterrupted.keys() == again.keys()
    for key, value in uninterrupted.items():
        assert torch.equal(value, again[key]), key
    assert [int(row["epoch"]) for row in csv.DictReader(open(folder / RUN / "metrics.csv"))] == [1, 2, 3]


class ProcessShareBatchNorm(torch.nn.BatchNorm2d):
    """BatchNorm as two processes apply it to a global batch of the device loader: process r
    holds its rows r, r + 2, ..., normalises them by their own statistics, and the running
    statistics follow the first process's (DistributedDataParallel broadcasts its buffers)."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        first = super().forward(x[0::2])
        second = torch.nn.functional.batch_norm(x[1::2], None, None, self.weight, self.bias, True, 0.0, self.eps)
        return torch.stack([first, second], dim=1).flatten(0, 1)


def _with_process_share_batchnorm(build=session.build_model):
    def build_model(*args, **kwargs):
        model = build(*args, **kwargs)
        for name, module in list(model.named_modules()):
            if type(module) is torch.nn.BatchNorm2d:
                parent, _, attribute = name.rpartition(".")
                shared = ProcessShareBatchNorm(module.num_features)
                shared.load_state_dict(module.state_dict())
                setattr(model.get_submodule(parent), attribute, shared)
        return model
    return build_model


def test_two_processes_train_like_one_with_the_same_global_batch(two_process_run, tmp_path, monkeypatch):
    """Under DistributedDataParallel each process normalises by the BatchNorm statistics of its
    own share (8 images, not the global 16), as for train_vanilla.py: that alone moved the
    parameter updates of these 9 steps by 40-80% against a plain one-process run. The one
    process here normalises the two shares separately (ProcessShareBatchNorm); then the runs
    differ only in the order floats are summed (two half-batch gradients averaged instead of
    one mean over 16, Z from two partial sums). After epoch 1 (3 steps) the weights agree
    within rtol 1e-5, atol 1e-6 (seen: 8e-7 of the largest weight). This tiny-batch run then
    amplifies float noise: one process started from weights moved by 1e-7 (relative) ends
    epoch 2 1e-3 away; so after 9 steps, across the stage switch and the memory refresh,
    everything agrees within rtol 1e-3, atol 2e-4 (seen: 1e-4). A process updating its memories
    with its own share only, or fixing Z from it, is off by 1e-2 and more."""
    folder, _, _ = two_process_run
    monkeypatch.chdir(_data(tmp_path))
    monkeypatch.setattr(session, "build_model", _with_process_share_batchnorm())
    train_ctc.main(ARGS)
    losses = [[float(row["train_loss"]) for row in csv.DictReader(open(f / RUN / "metrics.csv"))]
              for f in (folder, tmp_path)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    got, expected = (util.load_checkpoint(f / RUN / "ckpt_epoch_1.pth")["model"] for f in (folder, tmp_path))
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=key)
    got, expected = (_flat(util.load_checkpoint(f / RUN / "resnet8_last.pth")) for f in (folder, tmp_path))
    trained = [key for key in expected if key.startswith(("model/", "method/"))]
    assert {"method/ctc/contrast_memory.z_student", "method/instance/memory.memory", "model/bn1.running_mean",
            "method/info_bank/bn1.running_var"} <= set(trained)
    for key in trained:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-3, atol=2e-4, msg=key)


def _epoch_of_rank(rank, labels, k=8, seed=5):
    """One epoch of process `rank` of two: (indices, images, contrast indices), one batch of 32.
    Every image is the same picture, so two images differ only by their crop and flip."""
    picture = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    contrast = ContrastSampler(labels, k)
    loader = DeviceLoader(np.repeat(picture, len(labels), 0), labels, 32, CIFAR100_MEAN, CIFAR100_STD, "cpu",
                          contrast=contrast, shard=(rank, 2))
    torch.manual_seed(seed)   # every process seeds torch's global RNG alike
    (images, _, index, contrast_idx), = list(loader)
    return index, images, contrast_idx


def test_device_loader_processes_share_the_order_and_draw_their_own_crops_and_negatives():
    labels = np.arange(64)   # one class per image: every pool holds the 63 others
    (index0, images0, negatives0), (index1, images1, negatives1) = (_epoch_of_rank(rank, labels) for rank in (0, 1))
    assert sorted(torch.cat([index0, index1]).tolist()) == list(range(64))
    # one stream for both would give row i of each process the same crop, flip and pool positions
    same_crop = (images0 == images1).flatten(1).all(dim=1).float().mean()
    same_negatives = (negatives0[:, 1:] == negatives1[:, 1:]).float().mean()
    assert same_crop < 0.5 and same_negatives < 0.1
    again = _epoch_of_rank(1, labels)    # a resumed run restores the same global RNG state
    assert all(torch.equal(a, b) for a, b in zip(again, (index1, images1, negatives1)))


def test_torch_loader_processes_draw_their_own_numpy_streams():
    states = []
    for rank in (0, 1, 1):
        sampler = ShardedRandomSampler(10, (rank, 2))
        torch.manual_seed(3)
        order = list(sampler)
        states.append((order, np.random.random(4).tolist()))
    (order0, draws0), (order1, draws1), again = states
    assert sorted(order0 + order1) == list(range(10)) and draws0 != draws1 and again == states[1]
    workers = []
    for rank in (0, 1):
        torch.manual_seed(11)   # as DataLoader seeds a worker: alike in every process
        seed_worker_of_rank(rank, worker_id=0)
        workers.append((torch.rand(3).tolist(), np.random.random(3).tolist()))
    assert workers[0][0] != workers[1][0] and workers[0][1] != workers[1][1]


def test_cuda_graph_under_torchrun_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(session, "init_distributed", lambda device: (0, 2, torch.device("cpu")))
    monkeypatch.chdir(tmp_path)   # no data: refused before any is read
    with pytest.raises(util.UserError, match=r"^--cuda_graph trains in one process: under torchrun"):
        train_ctc.main(ARGS + ["--cuda_graph"])
    assert not (tmp_path / "save").exists()


def test_nce_k_above_a_class_pool_is_one_warning(capsys):
    labels = np.array([0, 1, 2, 2, 2, 3, 1, 4, 5, 6])   # class 2: 3 images, 7 others to draw from
    train_ctc.warn_if_negatives_repeat(labels, 7)
    assert capsys.readouterr().out == ""
    train_ctc.warn_if_negatives_repeat(labels, 8)
    assert capsys.readouterr().out == ("warning: --nce_k 8 exceeds the 7 training images outside class 2 (the "
                                       "smallest pool of negatives): negatives of that class's samples are drawn "
                                       "with repetition\n")
