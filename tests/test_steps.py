"""Train-step variants: the captured SGD update, flag combinations, multi-process training."""
import os
import socket
import subprocess
import sys

import pytest
import torch

import fakedata
import train_vanilla
import util
from helper.precision import Precision
from helper.steps import GraphedTrainStep, sgd_update
from models import build_model
from tests.conftest import ROOT


def test_sgd_update_is_torch_sgd_with_a_tensor_lr():
    torch.manual_seed(0)
    reference = build_model("resnet8", 10)
    ours = build_model("resnet8", 10)
    ours.load_state_dict(reference.state_dict())
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    params = list(ours.parameters())
    buffers = [torch.zeros_like(p) for p in params]
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for lr in (0.05, 0.03, 0.01):   # the lr changes between steps, as between epochs
        for group in optimizer.param_groups:
            group["lr"] = lr
        for model in (reference, ours):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        sgd_update(params, buffers, torch.tensor(lr), 0.9, 5e-4)
    for a, b in zip(reference.parameters(), params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    for p, buffer in zip(reference.parameters(), buffers):
        torch.testing.assert_close(optimizer.state[p]["momentum_buffer"], buffer, rtol=1e-5, atol=1e-7)


def test_cuda_graph_refuses_what_it_cannot_do():
    optimizer = torch.optim.SGD(build_model("resnet8", 10).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        GraphedTrainStep(optimizer, Precision("cpu"), 64)


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    fakedata.write_cifar100(tmp_path / "data", n_train=96, n_test=32)
    monkeypatch.chdir(tmp_path)
    return tmp_path


BASE = ["--epochs", "1", "--model", "resnet8", "--batch_size", "32", "--num_workers", "0", "--save_freq", "1"]


@pytest.mark.parametrize("flags", [
    ["--loader", "gpu", "--channels_last"],
    ["--loader", "torch", "--amp", "bf16", "--no-cudnn_benchmark", "--no-tf32"],
    ["--loader", "gpu", "--amp", "bf16", "--channels_last", "--aug", "mine"],
])
def test_speed_flags_combine_on_the_cpu(cifar_dir, flags):
    train_vanilla.main(BASE + flags + ["--note", "-".join(f.strip("-") for f in flags)])
    run = next((cifar_dir / "save/model").iterdir())
    ckpt = util.load_checkpoint(run / "ckpt_epoch_1.pth")
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_unsupported_flags_say_so_in_one_line(cifar_dir):
    if not torch.cuda.is_available():
        with pytest.raises(util.UserError, match="--cuda_graph needs a CUDA device"):
            train_vanilla.main(BASE + ["--cuda_graph", "--device", "cpu"])
    with pytest.raises(util.UserError, match="'auto'.*torch DataLoader"):
        train_vanilla.main(BASE + ["--loader", "gpu", "--aug", "auto"])
    assert not (cifar_dir / "save/model").exists() or not any((cifar_dir / "save/model").rglob("*.pth"))


def test_fast_loader_matches_the_plain_one_without_augmentation(cifar_dir):
    """Same seed, no augmentation, one batch per epoch: both loaders give the same model."""
    states = []
    for loader in ("torch", "gpu"):
        train_vanilla.main(["--epochs", "2", "--model", "resnet8", "--batch_size", "96", "--num_workers", "0",
                            "--aug", "mine", "--loader", loader, "--note", loader, "--save_freq", "2"])
        states.append(util.load_checkpoint(next(cifar_dir.glob(f"save/model/*_{loader}")) / "ckpt_epoch_2.pth"))
    for key, value in states[0]["model"].items():
        torch.testing.assert_close(states[1]["model"][key], value, rtol=1e-4, atol=1e-5)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_gloo_run_saves_from_rank_zero_and_loads_into_a_plain_model(cifar_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(_free_port()), str(ROOT / "train_vanilla.py"), *BASE, "--epochs", "2", "--device", "cpu",
               "--note", "ddp"]
    result = subprocess.run(command, cwd=cifar_dir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    # only rank 0 prints: one ' * Acc@1' line per train epoch and per test pass
    assert result.stdout.count(" * Acc@1") == 4
    run = cifar_dir / "save/model/resnet8_cifar100_lr_0.05_trial_0_ddp"
    assert {"ckpt_epoch_1.pth", "ckpt_epoch_2.pth", "resnet8_last.pth"} <= {p.name for p in run.glob("*.pth")}
    model = build_model("resnet8", 100)
    model.load_model(run / "ckpt_epoch_2.pth")   # no 'module.' prefix left in what rank 0 saved
    assert not any(k.startswith("module.") for k in util.load_checkpoint(run / "ckpt_epoch_2.pth")["model"])
    # 96 images, global batch 32 split over 2 processes: each runs 3 steps of 16 per epoch
    assert int(util.load_checkpoint(run / "ckpt_epoch_2.pth")["model"]["bn1.num_batches_tracked"]) == 6


def _epoch_meters_of_rank(rank, port, results):
    """One process of a 2-process gloo group: rank r sees 2 + r samples with loss r + 1, all right."""
    from helper.loops import EpochMeters, NonFiniteLoss, StepOutput
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        meters = EpochMeters("cpu")
        target = torch.zeros(2 + rank, dtype=torch.long)
        logits = torch.nn.functional.one_hot(target, 10).float() * (1 if rank == 0 else -1)  # right, wrong
        meters.update(0, StepOutput(torch.tensor(rank + 1.0), logits), target)
        averages = (meters.averages(), meters.averages(across_processes=True))
        # train_epoch, which fit() calls, reports the same whole-epoch averages
        from helper.loops import train_epoch
        epoch_averages = train_epoch(1, [(torch.zeros(len(target), 1), target)], torch.nn.Identity(),
                                     lambda batch: StepOutput(torch.tensor(rank + 1.0), logits), Precision("cpu"))
        assert epoch_averages == averages[1]
        # Rank 1 goes non-finite at its step 3, rank 0 only at step 4: both stop, naming the earliest.
        diverged = EpochMeters("cpu")
        for step in range(4):
            loss = float("nan") if step == 3 - rank else 1.0
            diverged.update(step, StepOutput(torch.tensor(loss), logits), target)
        try:
            diverged.raise_if_diverged(epoch=5)
            stopped = None
        except NonFiniteLoss as err:
            stopped = str(err)
        results[rank] = (*averages, stopped)
    finally:
        torch.distributed.destroy_process_group()


def test_train_epoch_averages_and_divergence_cover_every_process():
    import torch.multiprocessing as mp
    results = mp.Manager().dict()
    mp.spawn(_epoch_meters_of_rank, args=(_free_port(), results), nprocs=2)
    # rank 0: 2 samples, loss 1, both top-1 right; rank 1: 3 samples, loss 2, top-1 wrong
    (local0, whole0, stopped0), (local1, whole1, stopped1) = results[0], results[1]
    assert stopped0 == stopped1 == "loss became non-finite at epoch 5, step 3"
    assert (local0["loss"], local0["top1"]) == (1.0, 100.0) and (local1["loss"], local1["top1"]) == (2.0, 0.0)
    for whole in (whole0, whole1):
        assert whole["loss"] == pytest.approx((2 * 1 + 3 * 2) / 5) and whole["top1"] == pytest.approx(40.0)


def test_a_resumed_fp16_run_continues_from_the_saved_loss_scale(tmp_path, monkeypatch):
    # One batch an epoch: half-precision convolutions are slow on a CPU.
    fakedata.write_cifar100(tmp_path / "data", n_train=32, n_test=8)
    monkeypatch.chdir(tmp_path)
    args = BASE + ["--amp", "fp16", "--note", "fp16"]
    train_vanilla.main(args)
    last = tmp_path / "save/model/resnet8_cifar100_lr_0.05_trial_0_fp16/resnet8_last.pth"
    state = util.load_checkpoint(last)
    state["step"]["scaler"].update(scale=512.0, _growth_tracker=1000)  # as if after many steps and a backoff
    util.atomic_save(state, last)
    train_vanilla.main(args[:1] + ["2"] + args[2:] + ["--resume"])
    scaler = util.load_checkpoint(last)["step"]["scaler"]
    # 1 more step of 32 images, not overflowing: the scale stays, the growth count goes on
    assert (scaler["scale"], scaler["_growth_tracker"]) == (512.0, 1001)


def test_fp16_loss_scale_is_part_of_the_resumable_state():
    from helper.steps import TrainStep
    model = build_model("resnet8", 10)
    make = lambda: TrainStep(torch.optim.SGD(model.parameters(), lr=0.1), Precision("cpu", amp="fp16"))  # noqa: E731
    step = make()
    step.scaler.scale(torch.ones(()))          # the scaler starts lazily, at the first scaled loss
    step.scaler.update(new_scale=1024.0)
    restored = make()
    restored.load_state_dict(step.state_dict())
    assert restored.scaler.get_scale() == 1024.0 != make().scaler.get_scale()
    assert TrainStep(torch.optim.SGD(model.parameters(), lr=0.1), Precision("cpu")).state_dict() == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graph_steps_match_eager_steps_on_a_gpu():
    """Seven full-size steps of resnet8 (3 eager warm-up steps, the capture, replays), the
    learning rate changed half-way as between epochs, then a smaller tail batch (eager in
    both). TF32 off and deterministic cuDNN, so the two runs differ only in the order of
    float operations of the SGD update: losses and weights agree within rtol 1e-4, atol 1e-6."""
    import copy
    from helper.loops import CrossEntropyMethod
    from helper.steps import build_step
    backends = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        device = torch.device("cuda")
        torch.manual_seed(0)
        start = build_model("resnet8", 10).to(device)
        generator = torch.Generator(device=device).manual_seed(1)
        batches = [(torch.randn(size, 3, 32, 32, generator=generator, device=device),
                    torch.randint(0, 10, (size,), generator=generator, device=device)) for size in [32] * 7 + [20]]
        runs = {}
        for graphed in (False, True):
            model = copy.deepcopy(start)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
            step = build_step(optimizer, Precision(device), 32, cuda_graph=graphed)
            method = CrossEntropyMethod(model, None, 0.05, 5e-4, epochs=2, min_lr_scale=0.1)
            losses = []
            for number, batch in enumerate(batches):
                if number in (0, 5):
                    step.begin_epoch(method.loss, 0.05 if number == 0 else 0.02, 5e-4)
                losses.append(float(step(batch).loss))  # read now: a replay overwrites the graph's output
            assert (getattr(step, "graph", None) is not None) == graphed
            runs[graphed] = losses, {key: value.clone() for key, value in model.state_dict().items()}
        (eager_losses, eager_state), (graph_losses, graph_state) = runs[False], runs[True]
        assert graph_losses == pytest.approx(eager_losses, rel=1e-4)
        for key, value in eager_state.items():
            torch.testing.assert_close(graph_state[key], value, rtol=1e-4, atol=1e-6, msg=key)
        assert not torch.equal(eager_state["conv1.weight"], start.state_dict()["conv1.weight"])
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) = backends
