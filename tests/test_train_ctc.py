"""train_ctc.py: the two presets end to end, the stage switch, the memory refresh, the projector."""
import csv
from types import SimpleNamespace

import pytest
import torch

import fakedata
import train_ctc
import util
from dataset import build_loaders
from helper.loops import CTCMethod, ctc_lr, train_epoch
from helper.precision import Precision
from helper.steps import TrainStep
from models import build_model

PRESET = ["--dataset", "cifar100", "--model", "resnet8", "--momentum", "0.9", "--learning_rate", "0.05",
          "--batch_size", "64", "--weight_decay", "0.0005", "--weight_decay_coef", "2.0", "-b", "1.0",
          "--instance_m", "0.9", "--nce_m", "0.9", "--update_memory_bank", "--save_freq", "1", "--note", "ctc",
          "--num_workers", "0", "--nce_k", "64", "--epochs", "3", "--stage_two_epoch", "2"]
FIRST = ["-a", "0.5", "--instance_t", "0.10", "--nce_t", "0.10"]
SECOND = ["-a", "0.1", "--instance_t", "0.50", "--nce_t", "0.40"]


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    fakedata.write_cifar100(tmp_path / "data", n_train=160, n_test=64)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_first_preset_switches_stage_after_epoch_two(cifar_dir):
    train_ctc.main(PRESET + FIRST)
    run = cifar_dir / "save/model/resnet8_cifar100_a:0.5_b:1.0_ctc"
    last = util.load_checkpoint(run / "resnet8_last.pth")
    epoch2 = util.load_checkpoint(run / "ckpt_epoch_2.pth")["model"]
    epoch3 = util.load_checkpoint(run / "ckpt_epoch_3.pth")["model"]
    info_bank = last["method"]["info_bank"]
    # the info bank is the model as it was at the end of epoch 2, untouched by epoch 3
    assert all(torch.equal(info_bank[k], epoch2[k]) for k in epoch2)
    assert not torch.equal(epoch3["conv1.weight"], epoch2["conv1.weight"])
    assert {g["weight_decay"] for g in last["optimizer"]["param_groups"]} == {0.0005}

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    for row in rows:
        epoch = int(row["epoch"])
        assert float(row["lr"]) == pytest.approx(ctc_lr(epoch, 0.05, 3, 2, 0.1))
        stage_one = epoch <= 2
        assert (row["train_instance"] != "") == stage_one and (row["train_nce"] != "") == (not stage_one)
    z = last["method"]["ctc"]
    assert z["contrast_memory.z_student"] > 0 and z["contrast_memory.z_infobank"] > 0


def test_second_preset_runs_into_its_own_folder(cifar_dir, capsys):
    # 160 images of 100 classes: classes 0-59 hold two, so 158 other-class images is the smallest pool
    train_ctc.main(PRESET + SECOND + ["--epochs", "2", "--stage_two_epoch", "1", "--mode", "relax", "--nce_k", "200"])
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]
    assert warnings == ["warning: --nce_k 200 exceeds the 158 training images outside class 0 (the smallest pool "
                        "of negatives): negatives of that class's samples are drawn with repetition"]
    run = cifar_dir / "save/model/resnet8_cifar100_a:0.1_b:1.0_ctc"
    assert (run / "ckpt_epoch_2.pth").is_file()   # the run went on
    assert util.read_csv(run / "metrics.csv")[1]["train_nce"] != ""


def _options(**overrides):
    args = train_ctc.parse_option(PRESET + FIRST)
    return SimpleNamespace(**{**vars(args), **overrides})


def _method(cifar_dir, **overrides):
    torch.manual_seed(0)
    opts = _options(**overrides)
    model = build_model("resnet8", 100)

    def make_loader(variant):   # no augmentation, so the refresh pass is reproducible below
        return build_loaders("cifar100", "data", 64, 0, aug="mine", variant=variant, nce_k=opts.nce_k)[0]
    return CTCMethod(model, make_loader, 160, opts, Precision("cpu")), model, make_loader


def _train_one_epoch(method, model, momentum=0.0):
    step = TrainStep(torch.optim.SGD(method.trainable_parameters(), lr=0.1, momentum=momentum), Precision("cpu"))
    loader = method.begin_epoch(1)
    step.begin_epoch(method.loss, 0.1, 0.0)
    train_epoch(1, loader, model, step, step.precision)


def test_weight_decay_doubles_in_stage_one_only(cifar_dir):
    method, _, _ = _method(cifar_dir)
    assert [method.weight_decay(e) for e in (1, 2, 3)] == pytest.approx([0.001, 0.001, 0.0005])


def test_memory_refresh_overwrites_both_memories_from_the_info_bank(cifar_dir):
    method, model, make_loader = _method(cifar_dir)
    method.end_epoch(2)
    memory = method.ctc_loss.contrast_memory
    batches = list(make_loader("instance"))
    images, index = torch.cat([b[0] for b in batches]), torch.cat([b[2] for b in batches])
    with torch.no_grad():
        feature = model.eval()(images, is_feat=True)[0][-1]
        expected_student = method.ctc_loss.embed_student(feature)
        expected_infobank = method.ctc_loss.embed_infobank(feature)
    torch.testing.assert_close(memory.memory_student[index], expected_student, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(memory.memory_infobank[index], expected_infobank, atol=1e-5, rtol=1e-5)


def test_without_update_memory_bank_the_memories_stay(cifar_dir):
    method, _, _ = _method(cifar_dir, update_memory_bank=False)
    before = method.ctc_loss.contrast_memory.memory_student.clone()
    method.end_epoch(2)
    assert method.info_bank is not None
    assert torch.equal(method.ctc_loss.contrast_memory.memory_student, before)


@pytest.mark.parametrize("train_projector", [False, True])
def test_stage_one_projector_is_trained_only_on_request(cifar_dir, train_projector):
    method, model, _ = _method(cifar_dir, train_projector=train_projector)
    projector = method.instance_loss.projector.linear.weight
    in_optimizer = any(p is projector for p in method.trainable_parameters())
    assert in_optimizer == train_projector
    before = projector.detach().clone()
    _train_one_epoch(method, model, momentum=0.9)
    assert torch.equal(projector, before) != train_projector


def test_instance_memory_rows_are_unit_norm_after_training(cifar_dir):
    method, model, _ = _method(cifar_dir)
    _train_one_epoch(method, model)
    norms = method.instance_loss.memory.memory.norm(dim=1)
    # every training sample was visited once, so every row was renormalised
    torch.testing.assert_close(norms, torch.ones_like(norms))
