"""Shared helpers: LR schedules, checkpoint discovery, shards, atomic files, result rows."""
import json
import math
import os

import numpy as np
import pytest
import torch

import util
from dataset import dataset_tag
from dataset.common import atomic_save_npz
from helper.loops import ctc_lr, vanilla_lr
from helper.precision import check_bf16
from helper.results import append_result, parse_shard, read_results, store_result, take_shard
from helper.run import SAVE_ROOT, ctc_run_name, find_checkpoints, model_folder, tensorboard_folder, vanilla_run_name


def test_vanilla_lr_matches_the_formula_at_key_epochs():
    base, epochs = 0.05, 200
    assert vanilla_lr(1, base, epochs) == pytest.approx(0.01)          # warm-up: base * 1/5
    assert vanilla_lr(5, base, epochs) == pytest.approx(0.05)          # end of warm-up
    cos6 = 0.5 * (1 + math.cos(math.pi * 6 / 201))
    assert vanilla_lr(6, base, epochs) == pytest.approx(base * (0.1 + 0.9 * cos6))
    cos_last = 0.5 * (1 + math.cos(math.pi * 200 / 201))
    assert vanilla_lr(200, base, epochs) == pytest.approx(base * (0.1 + 0.9 * cos_last))
    assert vanilla_lr(200, base, epochs, min_lr_scale=0.0) == pytest.approx(base * cos_last)


def test_ctc_lr_restarts_at_the_stage_switch():
    base, epochs, switch, rate = 0.05, 300, 200, 0.1
    assert ctc_lr(1, base, epochs, switch, rate) == pytest.approx(base * 0.5 * (1 + math.cos(math.pi / 201)))
    assert ctc_lr(5, base, epochs, switch, rate) == pytest.approx(base * 0.5 * (1 + math.cos(5 * math.pi / 201)))
    assert ctc_lr(200, base, epochs, switch, rate) == pytest.approx(base * 0.5 * (1 + math.cos(200 * math.pi / 201)))
    # epoch 201 is the first of stage 2: e' = 1 over a 100-epoch stage
    assert ctc_lr(201, base, epochs, switch, rate) == pytest.approx(base * rate * 0.5 * (1 + math.cos(math.pi / 101)))
    assert ctc_lr(300, base, epochs, switch, rate) == pytest.approx(base * rate * 0.5 * (1 + math.cos(100 * math.pi / 101)))


def _touch_ckpts(folder, epochs):
    for epoch in epochs:
        torch.save({"epoch": epoch}, folder / f"ckpt_epoch_{epoch}.pth")


def test_find_checkpoints_walks_start_and_skip(tmp_path):
    _touch_ckpts(tmp_path, [2, 4, 5, 6, 10])
    found = find_checkpoints(tmp_path, start_epoch=2, skip=2)
    assert [epoch for epoch, _ in found] == [2, 4, 6, 10]
    assert [epoch for epoch, _ in find_checkpoints(tmp_path, 5, 5)] == [5, 10]
    with pytest.raises(util.UserError, match="epochs present: \\[2, 4, 5, 6, 10\\]"):
        find_checkpoints(tmp_path, start_epoch=3, skip=4)


def test_shards_cover_every_item_exactly_once():
    items = list(range(11))
    parts = [take_shard(items, parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(sum(parts, [])) == items
    assert parts[1] == [1, 4, 7, 10]
    for bad in ("3/3", "1-2", "", "a/b"):
        with pytest.raises(util.UserError):
            parse_shard(bad)


def test_results_survive_a_truncated_last_line(tmp_path, capsys):
    path = tmp_path / "results.jsonl"
    append_result(path, {"epoch": 2, "acc": 0.5})
    append_result(path, {"epoch": 4, "acc": 0.6})
    with open(path, "a") as handle:
        handle.write('{"epoch": 6, "ac')   # a writer killed mid-line by something outside the project
    assert [row["epoch"] for row in read_results(path)] == [2, 4]
    assert "not a complete result row" in capsys.readouterr().err
    append_result(path, {"epoch": 6, "acc": 0.7})
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [2, 4, 6]


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "ckpt.pth"
    util.atomic_save({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        util.atomic_save({"epoch": 2, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["ckpt.pth"]   # no temp file left behind


def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path, monkeypatch):
    # The umask is read once at import; under 022 a plain write gives 0644, mkstemp 0600.
    monkeypatch.setattr(util, "_UMASK", 0o022)
    util.atomic_save({"epoch": 1}, tmp_path / "ckpt.pth")
    util.atomic_write_text(tmp_path / "rows.jsonl", "{}\n")
    atomic_save_npz(tmp_path / "cache.npz", x=np.zeros(2))
    # mkstemp's 0600 would lock others out of checkpoints, results and caches on a shared machine.
    for name in ("ckpt.pth", "rows.jsonl", "cache.npz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    os.chmod(tmp_path / "rows.jsonl", 0o640)  # a mode the user chose survives a rewrite
    util.atomic_write_text(tmp_path / "rows.jsonl", "{}\n{}\n")
    assert (tmp_path / "rows.jsonl").stat().st_mode & 0o777 == 0o640


def test_load_checkpoint_names_a_truncated_file(tmp_path):
    path = tmp_path / "ckpt_epoch_2.pth"
    util.atomic_save({"epoch": 2, "model": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(util.UserError, match="ckpt_epoch_2.pth cannot be read"):
        util.load_checkpoint(path)
    with pytest.raises(util.UserError, match="does not exist"):
        util.load_checkpoint(tmp_path / "missing.pth")


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random
    import numpy as np
    util.set_seed(3)
    util.atomic_save({"rng": util.rng_state()}, tmp_path / "s.pth")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    util.set_seed(99)
    util.set_rng_state(util.load_checkpoint(tmp_path / "s.pth")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_run_names_follow_the_reference_layout():
    assert vanilla_run_name("resnet8", "cifar100", 0.05, "0", "vanilla") == "resnet8_cifar100_lr_0.05_trial_0_vanilla"
    assert ctc_run_name("resnet8", "cifar100", 0.5, 1.0, "ctc") == "resnet8_cifar100_a:0.5_b:1.0_ctc"
    assert dataset_tag("folder:/data/my_set") == "folder-my_set"
    run = model_folder("x")
    assert tensorboard_folder(run) == (SAVE_ROOT / "tensorboard" / "x").resolve()


def test_bf16_on_a_gpu_without_it_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Tesla V100")
    with pytest.raises(util.UserError, match="Tesla V100 has no bf16 support"):
        check_bf16("cuda", True)
    check_bf16("cuda", False)   # not asked for: nothing to say
    check_bf16("cpu", True)     # CPU autocast does bf16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    check_bf16("cuda", True)


def test_store_result_replaces_by_key_and_sorts_numbers_as_numbers(tmp_path):
    path = tmp_path / "results.jsonl"
    keys = ("target_dataset", "epoch")
    for target, epoch, value in (("cinic10", 10, 1), ("cinic10", 2, 2), ("cifar10", 4, 3), ("cinic10", 10, 4)):
        store_result(path, {"target_dataset": target, "epoch": epoch, "value": value}, keys=keys)
    store_result(path, {"epoch": 6, "value": 5}, keys=keys)  # a row from before the key existed
    rows = read_results(path)
    assert [(r.get("target_dataset"), r["epoch"], r["value"]) for r in rows] == [
        (None, 6, 5), ("cifar10", 4, 3), ("cinic10", 2, 2), ("cinic10", 10, 4)]  # a missing key sorts as "None"
    append_result(path, {"epoch": 2, "value": 6})
    assert [r["value"] for r in read_results(path)] == [5, 3, 2, 4, 6]
