"""Per-checkpoint linear transfer: the three protocols, results rows, printed lines, reruns,
shards, the backbone sanity check and unreadable checkpoints.

A resnet8 'trained' on CIFAR-100 (random weights, 100 classes) is probed on a tiny fake
CIFAR-10 for 2 target epochs, so every run takes well under a second.
"""
import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import transfer
import util
from helper.results import read_results
from helper.run import checkpoint_path, tensorboard_folder
from helper import transfer as probes
from helper.features import extract_features
from models import build_model
from tests import fakedata
from tests import warm_python
from tests.conftest import ROOT

RUN_NAME = "resnet8_cifar100_lr_0.05_trial_0_vanilla"
EPOCHS = (2, 4, 6)
LINE = re.compile(r"^Source Epoch: (\d+), Target Epoch: (\d+), Best Acc: (\S+)$")
TINY = ["--source_dataset", "cifar100", "--target_dataset", "cifar10", "--model", "resnet8",
        "--ckpt_path", RUN_NAME, "--start_epoch", "2", "--skip", "2", "--epoch", "2", "--batch", "16",
        "--lr", "0.1", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def source_model(seed):
    torch.manual_seed(seed)
    return build_model("resnet8", 100)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path holding ./data (fake CIFAR-10) and a run folder with checkpoints of epochs 2, 4, 6."""
    fakedata.write_cifar10(tmp_path / "data", n_train=40, n_test=30, seed=0)
    folder = tmp_path / "save" / "model" / RUN_NAME
    for epoch in EPOCHS:
        util.atomic_save({"epoch": epoch, "model": source_model(epoch).state_dict(), "accuracy": 1.0},
                         checkpoint_path(folder, epoch))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def results_file(workdir, protocol):
    return workdir / "save" / "model" / RUN_NAME / f"transfer_cifar10_{protocol}.jsonl"


def is_count_of(accuracy, total):
    """True if `accuracy` is correct / total for a whole number of correct answers."""
    return abs(accuracy * total - round(accuracy * total)) < 1e-9


def printed_lines(text):
    return [tuple(match.groups()) for line in text.splitlines() if (match := LINE.match(line))]


def tensorboard_scalars(folder, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder))
    events.Reload()
    return {event.step: event.value for event in events.Scalars(tag)}


# --------------------------------------------------------------------------- the script

def test_the_spec_command_parses_with_the_papers_probe_settings():
    args = transfer.parse_option(["--source_dataset", "cifar100", "--target_dataset", "cinic10", "--model",
                                  "resnext32_16x4d", "--ckpt_path", "some_run", "--start_epoch", "2", "--skip", "2"])
    assert (args.lr, args.wd, args.batch, args.epoch, args.protocol) == (0.4, 5e-4, 512, 30, "train_bn")
    assert (args.start_epoch, args.skip, args.shard, args.force) == (2, 2, None, False)


@pytest.mark.parametrize("protocol", probes.PROTOCOLS)
def test_each_protocol_writes_rows_prints_lines_and_skips_on_rerun(workdir, capsys, protocol):
    transfer.main(TINY + ["--protocol", protocol])
    lines = printed_lines(capsys.readouterr().out)
    assert [(j, t) for j, t, _ in lines] == [(str(j), str(t)) for j in (1, 2, 3) for t in (1, 2)]
    rows = read_results(results_file(workdir, protocol))
    assert [row["epoch"] for row in rows] == list(EPOCHS)
    for j, row in enumerate(rows, 1):
        assert row["protocol"] == protocol and row["target_dataset"] == "cifar10"
        assert (row["lr"], row["wd"], row["batch"], row["epochs"]) == (0.1, 5e-4, 16, 2)
        accuracies = row["acc_per_epoch"]
        assert len(accuracies) == 2 and all(0 <= a <= 1 and is_count_of(a, 30) for a in accuracies)
        assert row["best_acc"] == max(accuracies) and row["final_acc"] == accuracies[-1]
        best_printed = [best for jj, _, best in lines if jj == str(j)]
        assert best_printed == [repr(accuracies[0]), repr(max(accuracies))]
        assert row["seconds"] > 0
    scalars = tensorboard_scalars(workdir / "save" / "tensorboard" / RUN_NAME, f"transfer/cifar10_{protocol}")
    assert scalars == pytest.approx({row["epoch"]: row["best_acc"] for row in rows})

    before = results_file(workdir, protocol).read_text()
    transfer.main(TINY + ["--protocol", protocol])
    out = capsys.readouterr().out
    assert printed_lines(out) == [] and "nothing to do" in out
    assert results_file(workdir, protocol).read_text() == before

    transfer.main(TINY + ["--protocol", protocol, "--force", "--start_epoch", "4", "--skip", "100"])
    assert [(j, t) for j, t, _ in printed_lines(capsys.readouterr().out)] == [("1", "1"), ("1", "2")]
    rerun = read_results(results_file(workdir, protocol))
    assert [row["epoch"] for row in rerun] == list(EPOCHS)     # replaced, not appended
    assert rerun[1]["acc_per_epoch"] == rows[1]["acc_per_epoch"]  # same seed, same numbers
    assert rerun[0] == rows[0] and rerun[2] == rows[2]


def test_shards_cover_every_checkpoint_exactly_once(workdir, capsys):
    seen = []
    for shard in ("0/2", "1/2"):
        path = workdir / f"shard{shard[0]}.jsonl"
        transfer.main(TINY + ["--protocol", "frozen", "--shard", shard, "--results", str(path)])
        seen.append([row["epoch"] for row in read_results(path)])
    assert sorted(seen[0] + seen[1]) == list(EPOCHS) and seen[0] and seen[1]
    # The printed j is the checkpoint's place in the whole list, whichever shard runs it.
    assert sorted({int(j) for j, _, _ in printed_lines(capsys.readouterr().out)}) == [1, 2, 3]


def test_one_results_file_keeps_targets_and_protocols_apart(workdir, capsys):
    fakedata.write_cifar100(workdir / "data", n_train=40, n_test=30, seed=1)
    shared = workdir / "shared.jsonl"
    cifar100 = [arg if arg != "cifar10" else "cifar100" for arg in TINY]
    probes_run = [(TINY, "frozen"), (cifar100, "frozen"), (TINY, "adabn")]
    for argv, protocol in probes_run:
        transfer.main(argv + ["--protocol", protocol, "--results", str(shared)])
    rows = read_results(shared)
    assert sorted((row["target_dataset"], row["protocol"], row["epoch"]) for row in rows) == sorted(
        (target, protocol, epoch) for target, protocol in (("cifar10", "frozen"), ("cifar100", "frozen"),
                                                           ("cifar10", "adabn")) for epoch in EPOCHS)
    capsys.readouterr()
    transfer.main(cifar100 + ["--protocol", "frozen", "--results", str(shared)])
    assert "nothing to do" in capsys.readouterr().out
    # Forcing one target's probe replaces its own rows and leaves the other target's alone.
    transfer.main(cifar100 + ["--protocol", "frozen", "--results", str(shared), "--force"])
    rerun = read_results(shared)
    assert len(rerun) == 9
    assert [row for row in rerun if row["target_dataset"] == "cifar10"] == \
        [row for row in rows if row["target_dataset"] == "cifar10"]


def test_a_corrupt_checkpoint_is_named_the_others_still_run_and_the_exit_is_non_zero(workdir):
    corrupt = checkpoint_path(workdir / "save" / "model" / RUN_NAME, 4)
    corrupt.write_bytes(b"PK\x03\x04 not really a zip file")
    done = warm_python.run([ROOT / "transfer.py", *TINY, "--protocol", "frozen"], cwd=workdir, timeout=120)
    assert done.returncode != 0
    assert done.stderr.count(corrupt.name) == 1
    assert "Traceback" not in done.stderr
    assert [row["epoch"] for row in read_results(results_file(workdir, "frozen"))] == [2, 6]
    assert sorted({j for j, _, _ in printed_lines(done.stdout)}) == ["1", "3"]


def test_an_image_folder_target_gets_its_own_results_file(workdir, capsys):
    fakedata.write_image_folder(workdir / "pets", 3, 6, splits=("train", "test"), seed=1)
    args = TINY + ["--protocol", "frozen", "--target_dataset", f"folder:{workdir / 'pets'}"]
    transfer.main(args)
    rows = read_results(workdir / "save" / "model" / RUN_NAME / "transfer_folder-pets_frozen.jsonl")
    assert [row["epoch"] for row in rows] == list(EPOCHS)
    assert all(is_count_of(a, 18) for row in rows for a in row["acc_per_epoch"])  # 18 test images
    assert {row["target_dataset"] for row in rows} == {f"folder:{(workdir / 'pets').resolve()}"}
    # The same folder spelled another way is the same target: nothing to redo.
    capsys.readouterr()
    transfer.main(TINY + ["--protocol", "frozen", "--target_dataset", "folder:./pets/"])
    assert "nothing to do" in capsys.readouterr().out


def test_the_run_is_named_by_its_folder_however_ckpt_path_spells_it(workdir, monkeypatch, capsys):
    folder = workdir / "save" / "model" / RUN_NAME
    transfer.main(TINY + ["--protocol", "frozen", "--start_epoch", "4"])
    monkeypatch.chdir(folder)  # '.' names the same run: its rows are done, not another run's
    transfer.main([arg if arg != RUN_NAME else "." for arg in TINY]
                  + ["--protocol", "frozen", "--data_root", str(workdir / "data")])
    assert "skipping epoch(s) 4" in capsys.readouterr().out
    assert {row["run"] for row in read_results(results_file(workdir, "frozen"))} == {RUN_NAME}
    assert tensorboard_folder(".") == workdir / "save" / "tensorboard" / RUN_NAME


def test_a_results_file_belongs_to_one_run(workdir, capsys):
    other = workdir / "save" / "model" / "resnet8_cifar100_lr_0.05_trial_1_vanilla"
    util.atomic_save({"epoch": 2, "model": source_model(9).state_dict(), "accuracy": 1.0},
                     checkpoint_path(other, 2))
    transfer.main(TINY + ["--protocol", "frozen"])
    path = results_file(workdir, "frozen")
    assert {row["run"] for row in read_results(path)} == {RUN_NAME}
    before = path.read_bytes()
    for force in ([], ["--force"]):  # --force redoes checkpoints; it does not make the file another run's
        with pytest.raises(util.UserError, match=f"holds results of run {RUN_NAME}, not of {other.name}"):
            transfer.main([arg if arg != RUN_NAME else other.name for arg in TINY]
                          + ["--protocol", "adabn", "--results", str(path)] + force)
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- the protocols

@pytest.fixture
def target():
    rng = np.random.default_rng(3)
    splits = []
    for count in (48, 24):
        labels = fakedata.balanced_labels(count, 10, rng)
        splits += [torch.from_numpy(fakedata.class_images(labels, 32, rng)), torch.from_numpy(labels)]
    return probes.TargetData("cifar10", 10, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3), *splits)


def normalised(images, target):
    mean = torch.tensor(target.mean).view(1, 3, 1, 1)
    std = torch.tensor(target.std).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float() / 255 - mean) / std


def batchnorm_buffers(model):
    return {name: value.clone() for name, value in model.named_buffers() if "running" in name}


SETTINGS = probes.ProbeSettings(epochs=2, lr=0.1, batch_size=16)


@pytest.mark.parametrize("protocol", probes.PROTOCOLS)
def test_a_probe_keeps_backbone_weights_and_changes_bn_statistics_only_where_it_should(target, protocol):
    model = source_model(1)
    weights = {name: p.clone() for name, p in model.named_parameters() if not name.startswith("fc.")}
    buffers = batchnorm_buffers(model)
    result = probes.run_probe(model, target, protocol, SETTINGS, seed=0)
    assert len(result.acc_per_epoch) == 2
    assert all(torch.equal(p, weights[name]) for name, p in model.named_parameters() if name in weights)
    assert model.fc.out_features == 10
    moved = [name for name, value in batchnorm_buffers(model).items() if not torch.equal(value, buffers[name])]
    if protocol == "frozen":
        assert moved == []
    else:
        assert len(moved) == len(buffers)


def test_a_probe_that_changes_the_backbone_fails_loudly(target, monkeypatch):
    def sloppy_probe(model, classifier, *rest):
        with torch.no_grad():
            model.conv1.weight.add_(1e-3)
        return [0.5]
    monkeypatch.setattr(probes, "_probe_train_bn", sloppy_probe)
    with pytest.raises(probes.BackboneChanged, match="conv1.weight"):
        probes.run_probe(source_model(1), target, "train_bn", SETTINGS)


def test_train_bn_gives_the_numbers_of_backpropagating_through_the_whole_network(target):
    """The reference kept the network in train() mode and backpropagated through it; no_grad
    on the frozen backbone must not change a single accuracy or the learnt layer."""
    fast = source_model(5)
    result = probes.run_probe(fast, target, "train_bn", SETTINGS, seed=7)

    slow = source_model(5)
    slow.set_classifier(probes.new_classifier(slow.feat_dim, 10, seed=7))
    optimizer = torch.optim.SGD(slow.fc.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2)
    generator = torch.Generator().manual_seed(7)
    accuracies = []
    for _ in range(2):
        slow.train()
        for batch in torch.randperm(48, generator=generator).split(16):
            loss = F.cross_entropy(slow(normalised(target.train_images[batch], target)), target.train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
        slow.eval()
        with torch.no_grad():
            predicted = slow(normalised(target.test_images, target)).argmax(1)
        accuracies.append(int((predicted == target.test_labels).sum()) / 24)
    assert result.acc_per_epoch == accuracies
    assert torch.allclose(fast.fc.weight, slow.fc.weight, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(batchnorm_buffers(fast).values(),
                                                                 batchnorm_buffers(slow).values()))


@pytest.mark.parametrize("protocol", ["adabn", "frozen"])
def test_cached_features_equal_a_fresh_eval_forward_pass(target, protocol):
    model = source_model(2)
    train_features, test_features = probes.cached_features(model, target, protocol, 16, torch.Generator())
    model.eval()
    with torch.no_grad():
        for images, cached in ((target.train_images, train_features), (target.test_images, test_features)):
            fresh = model(normalised(images, target), is_feat=True)[0][-1]
            assert cached.shape == (len(images), 64)
            assert torch.allclose(cached, fresh, atol=1e-5)


def test_adabn_statistics_are_the_plain_average_of_the_batch_statistics(target):
    model = source_model(3)
    layer = model.bn1
    seen = []
    layer.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    probes.adapt_batchnorm(model, target.loader("train", 16, shuffle=True))
    assert len(seen) == 3 and not layer.training
    expected_mean = torch.stack([x.mean(dim=(0, 2, 3)) for x in seen]).mean(0)
    expected_var = torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in seen]).mean(0)
    assert torch.allclose(layer.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(layer.running_var, expected_var, atol=1e-5)
    assert layer.momentum == 0.1  # restored: later train-mode use would otherwise keep averaging


def test_linear_training_on_features_learns_a_separable_problem():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    centres = torch.randn(4, 8, generator=generator) * 3
    features = centres[labels] + 0.1 * torch.randn(200, 8, generator=generator)
    accuracies = probes.train_linear_on_features(probes.new_classifier(8, 4, seed=0), features, labels, features,
                                                 labels, probes.ProbeSettings(epochs=5, lr=0.1, batch_size=32),
                                                 generator)
    assert len(accuracies) == 5 and accuracies[-1] == 1.0


def test_a_cinic10_target_fits_on_train_tests_on_valid_with_its_own_normalisation(tmp_path):
    written = fakedata.write_image_folder(tmp_path / "CINIC-10", fakedata.CINIC10_CLASSES, 2, seed=4)
    target = probes.load_target("cinic10", tmp_path, "cpu")
    assert target.mean == pytest.approx((0.47889522, 0.47227842, 0.43047404))
    assert target.std == pytest.approx((0.24205776, 0.23828046, 0.25874835))
    for split, images, labels in (("train", target.train_images, target.train_labels),
                                  ("valid", target.test_images, target.test_labels)):
        assert torch.equal(images, torch.from_numpy(written[split][0]))
        assert torch.equal(labels, torch.from_numpy(written[split][1]))


def test_the_fast_linear_fit_computes_what_autograd_and_torch_optim_compute():
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 5, (203,), generator=generator)  # 203 = 6 x 32 + a tail batch of 11
    features = torch.randn(5, 16, generator=generator)[labels] + torch.randn(203, 16, generator=generator)
    test_labels = torch.randint(0, 5, (97,), generator=generator)
    test_features = torch.randn(97, 16, generator=generator)
    settings = probes.ProbeSettings(epochs=4, lr=0.4, batch_size=32)
    runs = {}
    for name, fit in (("fast", probes.train_linear_on_features), ("plain", probes.train_linear_plain)):
        classifier = probes.new_classifier(16, 5, seed=0)
        accuracies = fit(classifier, features, labels, test_features, test_labels, settings,
                         torch.Generator().manual_seed(7))
        runs[name] = (accuracies, classifier.weight.detach(), classifier.bias.detach())
    (fast_acc, fast_w, fast_b), (plain_acc, plain_w, plain_b) = runs["fast"], runs["plain"]
    assert fast_acc == plain_acc
    assert not torch.allclose(plain_w, probes.new_classifier(16, 5, seed=0).weight, atol=1e-2)  # it trained
    assert torch.allclose(fast_w, plain_w, atol=1e-5) and torch.allclose(fast_b, plain_b, atol=1e-5)


def test_the_linear_fit_follows_cosine_annealing_as_the_scheduler_steps_it():
    rates = probes.cosine_learning_rates(probes.ProbeSettings(epochs=4, lr=0.4))
    expected = [0.4 * (1 + math.cos(math.pi * epoch / 4)) / 2 for epoch in range(4)]
    assert rates == pytest.approx(expected, rel=1e-12) and rates[0] == 0.4


# --------------------------------------------------------------------------- --amp

def test_amp_features_are_float32_close_to_the_float32_ones_but_computed_in_bf16(target):
    model = source_model(2)
    data = (target.train_images, target.mean, target.std, "cpu")
    full = extract_features(model, *data)
    amp = extract_features(model, *data, amp=True)
    assert amp.dtype == torch.float32 and amp.shape == full.shape
    assert not torch.equal(amp, full)  # autocast ran: bf16 rounding changed the features
    assert ((amp - full).norm() / full.norm()).item() < 5e-2
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("protocol", probes.PROTOCOLS)
def test_amp_runs_every_backbone_pass_in_bf16_channels_last_and_keeps_the_linear_float32(target, protocol):
    model = source_model(1)
    weights = {name: p.clone() for name, p in model.named_parameters() if not name.startswith("fc.")}
    passes = []
    model.conv1.register_forward_hook(lambda module, inputs, output: passes.append(
        (output.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last),
         module.weight.is_contiguous(memory_format=torch.channels_last))))
    result = probes.run_probe(model, target, protocol, SETTINGS, seed=0, amp=True)
    assert passes and set(passes) == {(torch.bfloat16, True, True)}
    assert len(result.acc_per_epoch) == 2 and all(is_count_of(a, 24) for a in result.acc_per_epoch)
    assert model.fc.weight.dtype == torch.float32
    assert all(torch.equal(p, weights[name]) for name, p in model.named_parameters() if name in weights)
    assert all(value.dtype == torch.float32 for value in batchnorm_buffers(model).values())


def test_amp_rows_say_so_and_a_rerun_with_other_precision_is_refused_unless_forced(workdir, capsys):
    transfer.main(TINY + ["--protocol", "frozen", "--amp"])
    path = results_file(workdir, "frozen_amp")  # float32 and bf16 results have their own default files
    assert not results_file(workdir, "frozen").exists()
    assert [(row["epoch"], row["amp"]) for row in read_results(path)] == [(epoch, True) for epoch in EPOCHS]
    scalars = tensorboard_scalars(workdir / "save" / "tensorboard" / RUN_NAME, "transfer/cifar10_frozen_amp")
    assert sorted(scalars) == list(EPOCHS)
    before = path.read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # one file given for both: refused
        util.run_main(lambda: transfer.main(TINY + ["--protocol", "frozen", "--results", str(path)]))
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code != 0 and len(lines) == 1
    assert "made with other settings: amp True (now False)" in lines[0] and "--force" in lines[0]
    assert path.read_bytes() == before
    transfer.main(TINY + ["--protocol", "frozen", "--force", "--results", str(path)])
    rows = read_results(path)
    assert [row["amp"] for row in rows] == [False] * len(EPOCHS)

    # Rows written before --amp (and "run") existed have neither: they were float32, of this run.
    util.atomic_write_text(path, "".join(json.dumps({k: v for k, v in row.items() if k not in ("amp", "run")})
                                         + "\n" for row in rows))
    transfer.main(TINY + ["--protocol", "frozen", "--results", str(path)])
    assert "nothing to do" in capsys.readouterr().out
    with pytest.raises(util.UserError, match=r"amp False \(now True\)"):
        transfer.main(TINY + ["--protocol", "frozen", "--amp", "--results", str(path)])


# resnet8: every BatchNorm follows a convolution; wrn_16_1: its 7 pre-activation BatchNorms
# stay; vgg8: torch.fx cannot trace it, so all of them stay.
@pytest.mark.parametrize("name, left_unfolded", [("resnet8", 0), ("wrn_16_1", 7), ("vgg8", "all")])
def test_the_feature_extractor_folds_batchnorm_and_gives_the_models_own_features(name, left_unfolded):
    from helper.features import feature_extractor
    torch.manual_seed(0)
    model = build_model(name, 100)
    batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():  # statistics far from the initial ones, so that folding them matters
        for layer in batchnorms:
            layer.running_mean.normal_(0, 0.5)
            layer.running_var.uniform_(0.3, 3)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    extractor = feature_extractor(model)
    left = [m for m in extractor.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(left) == (len(batchnorms) if left_unfolded == "all" else left_unfolded)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(images, is_feat=True)[0][-1]
        assert torch.allclose(extractor(images), expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    assert not model.training
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())


def test_the_feature_extractor_folds_only_on_a_cpu_unless_told():
    """Folding paid on a CPU but not on an H200 (bench/feature_speed.py): off the CPU the
    extractor runs the model's own layers; `fold` overrides the default."""
    from helper.features import feature_extractor
    batchnorms = lambda module: sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())  # noqa: E731
    model = build_model("resnet8", 10)
    assert batchnorms(feature_extractor(model)) == 0
    assert batchnorms(feature_extractor(model, fold=False)) == batchnorms(model) > 0
    elsewhere = build_model("resnet8", 10).to("meta")  # a device other than the CPU, which this machine has
    assert feature_extractor(elsewhere).model is elsewhere
    assert isinstance(feature_extractor(elsewhere, fold=True), torch.fx.GraphModule)  # folding works there
