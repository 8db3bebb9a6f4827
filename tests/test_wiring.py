"""Wiring: what the training scripts and transfer.py pass from one part to the next.

The arithmetic of each part is tested against a hand-written reference elsewhere; here
the tests watch the parts run together through the scripts' main() and compare what
reached them with the SPEC written out again: the learning rate and weight decay the
optimizer itself holds in every epoch, the logged loss against its weighted terms, the
test pass against an eval-mode forward pass, and the precision flags in the forward
passes they are meant to change. A number logged beside the function that computed it
proves nothing about what the optimizer or the model actually received.
"""
import csv
import math

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

import fakedata
import helper.loops
import helper.session
import train_ctc
import train_vanilla
import transfer
import util
from helper.run import checkpoint_path
from models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)  # SPEC 4
N_TRAIN, N_TEST, BATCH = 32, 16, 16
STEPS_PER_EPOCH = N_TRAIN // BATCH
COMMON = ["--model", "resnet8", "--batch_size", str(BATCH), "--num_workers", "0", "--print_freq", "1000",
          "--device", "cpu"]


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    sets = fakedata.write_cifar100(tmp_path / "data", n_train=N_TRAIN, n_test=N_TEST)
    monkeypatch.chdir(tmp_path)
    return tmp_path, sets


def metrics(folder):
    return list(csv.DictReader(open(next(folder.glob("save/model/*/metrics.csv")))))


class OptimizerWatch:
    """Records, at every optimizer.step(), the epoch being trained and each parameter
    group's (lr, weight_decay, momentum) as the optimizer holds them when it applies them."""

    def __init__(self, monkeypatch, request):
        self.epoch, self.steps = None, []
        train_epoch = helper.loops.train_epoch

        def watched_train_epoch(epoch, *args, **kwargs):
            self.epoch = epoch
            return train_epoch(epoch, *args, **kwargs)
        monkeypatch.setattr(helper.loops, "train_epoch", watched_train_epoch)
        request.addfinalizer(register_optimizer_step_pre_hook(self._record).remove)  # the hook is global

    def _record(self, optimizer, args, kwargs):
        self.steps.append((self.epoch, {(group["lr"], group["weight_decay"], group["momentum"])
                                        for group in optimizer.param_groups}))

    def per_epoch(self):
        """{epoch: (lr, weight decay, momentum)}, after checking that every step of an epoch (and every
        parameter group) saw the same values."""
        seen = {}
        for epoch, values in self.steps:
            seen.setdefault(epoch, []).append(values)
        for epoch, steps in seen.items():
            assert len(steps) == STEPS_PER_EPOCH and all(values == steps[0] for values in steps), (epoch, steps)
            assert len(steps[0]) == 1, steps[0]
        return {epoch: next(iter(steps[0])) for epoch, steps in seen.items()}


# --------------------------------------------------------------------------- learning rate and weight decay

def test_vanilla_optimizer_holds_each_epochs_warmup_or_cosine_lr_weight_decay_and_momentum(cifar_dir, monkeypatch,
                                                                                            request):
    folder, _ = cifar_dir
    base, epochs, floor, wd = 0.08, 7, 0.2, 3e-4
    watch = OptimizerWatch(monkeypatch, request)
    train_vanilla.main(COMMON + ["--epochs", str(epochs), "--learning_rate", str(base), "--min_lr_scale", str(floor),
                                 "--weight_decay", str(wd), "--momentum", "0.8", "--save_freq", "100"])
    seen = watch.per_epoch()

    def spec_lr(e):  # SPEC 5, written out: warm-up to epoch 5, then cosine to floor * base
        if e <= 5:
            return base * e / 5
        return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * e / (epochs + 1))))
    assert sorted(seen) == list(range(1, epochs + 1))
    for epoch, (lr, weight_decay, momentum) in seen.items():
        assert lr == pytest.approx(spec_lr(epoch), rel=1e-12), epoch
        assert (weight_decay, momentum) == (wd, 0.8)
    assert [float(row["lr"]) for row in metrics(folder)] == pytest.approx([seen[e][0] for e in sorted(seen)], rel=1e-12)


def test_the_seed_sets_the_initial_weights_and_the_run(cifar_dir):
    def trained(seed, note):
        train_vanilla.main(COMMON + ["--epochs", "1", "--save_freq", "1", "--seed", seed, "--note", note])
        return util.load_checkpoint(next(cifar_dir[0].glob(f"save/model/*_{note}")) / "ckpt_epoch_1.pth")["model"]
    first, again, other = trained("3", "a"), trained("3", "b"), trained("4", "c")
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first["conv1.weight"], other["conv1.weight"])


CTC_ARGS = COMMON + ["--epochs", "5", "--stage_two_epoch", "3", "--learning_rate", "0.07", "--momentum", "0.85",
                     "--stage_two_decay_rate", "0.3", "--weight_decay", "4e-4", "--weight_decay_coef", "3.0",
                     "-a", "0.3", "-b", "2.5", "--nce_k", "8", "--save_freq", "100"]


@pytest.fixture
def ctc_run(cifar_dir, monkeypatch, request):
    """A 5-epoch CTC run (stage 2 from epoch 4) with alpha 0.3, beta 2.5: (folder, optimizer values per epoch)."""
    watch = OptimizerWatch(monkeypatch, request)
    train_ctc.main(CTC_ARGS)
    return cifar_dir[0], watch.per_epoch()


def test_ctc_optimizer_holds_each_stages_lr_weight_decay_and_momentum(ctc_run):
    folder, seen = ctc_run
    base, epochs, stage_one, decay, wd, coef = 0.07, 5, 3, 0.3, 4e-4, 3.0

    def spec_lr(e):  # SPEC 6, written out: one cosine per stage, stage 2 restarting at base * decay
        if e <= stage_one:
            return base * 0.5 * (1 + math.cos(math.pi * e / (stage_one + 1)))
        return base * decay * 0.5 * (1 + math.cos(math.pi * (e - stage_one) / (epochs - stage_one + 1)))
    assert sorted(seen) == list(range(1, epochs + 1))
    for epoch, (lr, weight_decay, momentum) in seen.items():
        assert lr == pytest.approx(spec_lr(epoch), rel=1e-12), epoch
        assert weight_decay == pytest.approx(wd * coef if epoch <= stage_one else wd, rel=1e-12), epoch
        assert momentum == 0.85
    assert [float(row["lr"]) for row in metrics(folder)] == pytest.approx([seen[e][0] for e in sorted(seen)], rel=1e-12)


def test_ctc_logged_loss_is_ce_plus_alpha_instance_then_ce_plus_beta_nce(ctc_run):
    folder, _ = ctc_run
    rows = metrics(folder)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4, 5]
    for row in rows:
        loss, ce = float(row["train_loss"]), float(row["train_ce"])
        if int(row["epoch"]) <= 3:
            other, weight = float(row["train_instance"]), 0.3
            assert row["train_nce"] == ""
        else:
            other, weight = float(row["train_nce"]), 2.5
            assert row["train_instance"] == ""
        # The terms are large and unequal, so a weight of 1 or the wrong one is far off.
        assert other > 0.5 and abs(loss - ce) > 0.1
        assert loss == pytest.approx(ce + weight * other, rel=1e-5), row


# --------------------------------------------------------------------------- the test pass

@pytest.mark.parametrize("loader", ["torch", "gpu"])
def test_the_logged_test_pass_is_an_eval_mode_pass_over_the_unaugmented_test_set(cifar_dir, loader):
    folder, sets = cifar_dir
    # A learning rate high enough that one epoch moves the BatchNorm statistics far from the
    # batch statistics of the test set: a train-mode pass would log another loss.
    train_vanilla.main(COMMON + ["--epochs", "1", "--save_freq", "1", "--loader", loader, "--learning_rate", "0.2"])
    row, = metrics(folder)
    model = build_model("resnet8", 100)
    model.load_model(checkpoint_path(next(folder.glob("save/model/*")), 1))
    images, labels = sets["test"]
    x = (torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255 - torch.tensor(CIFAR100_MEAN)[:, None, None]) \
        / torch.tensor(CIFAR100_STD)[:, None, None]
    target = torch.as_tensor(labels)
    with torch.no_grad():
        logits = model.eval()(x)
        train_mode_loss = float(F.cross_entropy(model.train()(x), target))
    hits = logits.argsort(dim=1, descending=True) == target[:, None]  # [N, classes]: where the target ranks
    assert float(row["test_loss"]) == pytest.approx(float(F.cross_entropy(logits, target)), rel=1e-5)
    assert abs(train_mode_loss - float(row["test_loss"])) > 1e-2  # the check can tell the two modes apart
    assert float(row["test_top1"]) == pytest.approx(100 * float(hits[:, 0].float().mean()))
    assert float(row["test_top5"]) == pytest.approx(100 * float(hits[:, :5].any(dim=1).float().mean()))


def test_the_best_checkpoint_is_the_epoch_of_the_highest_test_accuracy(cifar_dir, monkeypatch, capsys):
    # The test pass reports 50% after epoch 1, then 40% and 45%: the best stays epoch 1.
    reported = iter([50.0, 40.0, 45.0])
    monkeypatch.setattr(helper.loops, "validate", lambda *args, **kwargs: {"loss": 1.0, "top1": next(reported),
                                                                           "top5": 90.0})
    train_vanilla.main(COMMON + ["--epochs", "3", "--save_freq", "1"])
    run = next(cifar_dir[0].glob("save/model/*"))
    best, last = util.load_checkpoint(run / "resnet8_best.pth"), util.load_checkpoint(run / "resnet8_last.pth")
    assert (best["epoch"], best["best_acc"], last["epoch"], last["best_acc"]) == (1, 50.0, 3, 50.0)
    assert all(torch.equal(best["model"][key], value) for key, value in
               util.load_checkpoint(run / "ckpt_epoch_1.pth")["model"].items())
    assert "best accuracy: 50.000\n" in capsys.readouterr().out


# --------------------------------------------------------------------------- precision flags in effect

class ForwardWatch:
    """Records every forward pass of the models `build_model` makes: (training mode, autocast
    dtype or None, input channels_last, first conv weight channels_last, logits dtype)."""

    def __init__(self, monkeypatch, module):
        self.passes = []
        build = module.build_model

        def watched_build_model(*args, **kwargs):
            model = build(*args, **kwargs)
            model.register_forward_hook(self._record)
            return model
        monkeypatch.setattr(module, "build_model", watched_build_model)

    def _record(self, model, inputs, output):
        logits = output[1] if isinstance(output, tuple) else output
        autocast = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        self.passes.append((model.training, autocast, inputs[0].is_contiguous(memory_format=torch.channels_last),
                            model.conv1.weight.is_contiguous(memory_format=torch.channels_last), logits.dtype))


@pytest.mark.parametrize("flags, dtype, channels_last", [
    ([], None, False),
    (["--amp", "bf16", "--channels_last"], torch.bfloat16, True),
    (["--amp", "fp16"], torch.float16, False),
    (["--channels_last", "--loader", "gpu"], None, True),
])
def test_training_flags_are_in_effect_in_every_train_and_test_pass(cifar_dir, monkeypatch, flags, dtype, channels_last):
    watch = ForwardWatch(monkeypatch, helper.session)
    train_vanilla.main(COMMON + ["--epochs", "1", "--save_freq", "1"] + flags)
    logits = dtype or torch.float32
    # two train steps of 16, then one test batch of 16; every pass with the same precision and layout
    assert watch.passes == [(True, dtype, channels_last, channels_last, logits)] * STEPS_PER_EPOCH \
        + [(False, dtype, channels_last, channels_last, logits)]


@pytest.mark.parametrize("protocol", ["train_bn", "adabn"])
def test_transfer_amp_runs_the_checkpoints_backbone_in_bf16_channels_last(tmp_path, monkeypatch, protocol):
    fakedata.write_cifar10(tmp_path / "data", n_train=16, n_test=8)
    torch.manual_seed(0)
    util.atomic_save({"epoch": 2, "model": build_model("resnet8", 100).state_dict(), "accuracy": 1.0},
                     checkpoint_path(tmp_path / "run", 2))
    monkeypatch.chdir(tmp_path)
    args = ["--target_dataset", "cifar10", "--model", "resnet8", "--ckpt_path", "run", "--epoch", "1", "--batch", "8",
            "--device", "cpu", "--protocol", protocol]
    for amp, expected in ((["--amp"], (torch.bfloat16, True, True)), ([], (None, False, False))):
        watch = ForwardWatch(monkeypatch, transfer)
        transfer.main(args + amp)
        assert watch.passes and {(autocast, x, w) for _, autocast, x, w, _ in watch.passes} == {expected}, amp
