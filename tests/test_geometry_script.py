"""geometry.py end to end on tiny data: a row per checkpoint holding the measures and the
information of that checkpoint's own features, printed lines, TensorBoard scalars, --rows,
--noise and --seed, shards, reruns, unreadable checkpoints, bad flags and the calibrations.

The run folder of tests/test_mine_script.py (resnet8 checkpoints of epochs 2, 4, 6 with
random weights, 100 classes) is measured on the fake CINIC-10's 120 evaluation images
(10 classes of 12), so each call takes well under a second.
"""
import math
import re

import numpy as np
import pytest
import torch

import geometry
import helper.features
from dataset import dataset_info, load_arrays
from helper.features import extract_features
from helper.geometry.information import noisy_information
from helper.geometry.measures import measures
from helper.results import read_results
from helper.run import checkpoint_path
from models import build_model
from tests.test_faults import in_process, one_line_error
from tests.test_mine_script import EPOCHS, RUN_NAME, tensorboard, workdir  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = ["--model", "resnet8", "--dataset", "cinic10", "--source_dataset", "cifar100", "--ckpt_path", RUN_NAME,
        "--start_epoch", "2", "--skip", "2", "--device", "cpu"]
MEASURE_KEYS = ("effective_rank", "nc1", "cdnv", "class_separation", "feature_norm")
LEVEL_KEYS = {"noise", "sigma", "i_xt", "i_xt_stderr", "i_xt_lower", "i_xt_upper", "i_ty", "i_ty_stderr",
              "i_ty_heldout", "rows", "saturated"}
FIRST_LINE = re.compile(r"^geometry of resnet8 of (\d+)-th epoch on (\S+): effective rank (\S+), NC1 (\S+), "
                        r"CDNV (\S+), R\^2 (\S+), feature norm (\S+)$")


def results_file(workdir, dataset="cinic10"):
    return workdir / "save" / "model" / RUN_NAME / f"geometry_{dataset}.jsonl"


def printed(text):
    """{epoch: [the five measures as printed]} of the first line of each checkpoint."""
    return {int(m.group(1)): [float(v) for v in m.groups()[2:]] for line in text.splitlines()
            if (m := FIRST_LINE.match(line))}


def hand_features(workdir, epoch, images, dataset="cinic10"):
    model = build_model("resnet8", 100)
    model.load_model(checkpoint_path(workdir / "save" / "model" / RUN_NAME, epoch))
    info = dataset_info(dataset)
    return extract_features(model, images, info.mean, info.std, "cpu")


def assert_row_measures(row, features, labels, noise, seed):
    """The row's numbers are those of the measures and the information recomputed on `features`."""
    expected = measures(features, labels)
    for key in MEASURE_KEYS:
        assert row[key] == pytest.approx(expected[key], rel=1e-4), key
    levels = noisy_information(features, labels, noise, seed=seed)
    assert [level["noise"] for level in row["information"]] == noise
    for stored, level in zip(row["information"], levels):
        assert set(stored) == LEVEL_KEYS
        for key, value in level.row().items():
            assert stored[key] == (pytest.approx(value, rel=1e-4, abs=1e-6) if isinstance(value, float) else value), key


def recording(monkeypatch):
    """The images each checkpoint's features are extracted from, and the (features, labels)
    the information is computed from, as geometry.py passes them."""
    seen = {"images": [], "information": []}
    extract, information = helper.features.checkpoint_features, geometry.noisy_information

    def extract_recorded(model, path, source_classes, images, *args, **kwargs):
        seen["images"].append(np.array(images))
        return extract(model, path, source_classes, images, *args, **kwargs)

    def information_recorded(features, labels, *args, **kwargs):
        seen["information"].append((features.clone(), labels.clone(), args, kwargs))
        return information(features, labels, *args, **kwargs)
    monkeypatch.setattr(helper.features, "checkpoint_features", extract_recorded)
    monkeypatch.setattr(geometry, "noisy_information", information_recorded)
    return seen


# --------------------------------------------------------------------------- command line

def test_defaults_are_the_documented_noise_levels_and_every_evaluation_image():
    args = geometry.parse_option(["--ckpt_path", "run"])
    assert args.noise == [0.25, 0.5, 1.0] and args.rows is None and args.seed == 0
    assert (args.start_epoch, args.skip, args.shard, args.force, args.calibrate) == (2, 2, None, False, None)


# --------------------------------------------------------------------------- rows, lines, curves, reruns

def test_a_row_per_checkpoint_of_its_own_features_printed_and_in_tensorboard_and_skipped_on_rerun(workdir, capsys):
    geometry.main(ARGS)
    out = capsys.readouterr().out
    rows = read_results(results_file(workdir))
    assert [row["epoch"] for row in rows] == list(EPOCHS)
    images, labels = load_arrays("cinic10", "data", "test")
    labels = torch.as_tensor(labels)
    shown = printed(out)
    for row in rows:
        assert set(row) == {"run", "model", "source_dataset", "rows", "noise", "seed", "amp", "dataset", "epoch",
                            "checkpoint", "images", "information", "device", "seconds", *MEASURE_KEYS}
        assert (row["run"], row["model"], row["dataset"], row["source_dataset"]) == (RUN_NAME, "resnet8", "cinic10",
                                                                                   "cifar100")
        assert (row["rows"], row["images"], row["noise"], row["seed"], row["amp"]) == (None, 120, [0.25, 0.5, 1.0],
                                                                                     0, False)
        assert row["checkpoint"] == f"ckpt_epoch_{row['epoch']}.pth" and row["seconds"] > 0
        assert_row_measures(row, hand_features(workdir, row["epoch"], images), labels, [0.25, 0.5, 1.0], seed=0)
        assert shown[row["epoch"]] == pytest.approx([row[key] for key in MEASURE_KEYS], rel=1e-3)
    # The checkpoints differ, so a script that measured one of them thrice would be seen.
    assert len({row["effective_rank"] for row in rows}) == 3
    for row in rows:
        levels = "s = 0.25: {:.3f} / {:.3f}, s = 0.5: {:.3f} / {:.3f}, s = 1: {:.3f} / {:.3f}".format(
            *[level[key] for level in row["information"] for key in ("i_xt", "i_ty")])
        assert f"(nats, noise s relative to the features' scale): {levels}" in out

    scalars = tensorboard(workdir)
    expected = {f"geometry/{key}_cinic10": key for key in MEASURE_KEYS}
    expected.update({f"geometry/{name}_s{s:g}_cinic10": (key, i) for i, s in enumerate([0.25, 0.5, 1.0])
                     for key, name in (("i_xt", "I(X;T_s)"), ("i_ty", "I(T_s;Y)"))})
    assert set(scalars) == set(expected)
    for tag, key in expected.items():
        value = (lambda row: row[key]) if isinstance(key, str) else (lambda row: row["information"][key[1]][key[0]])
        assert scalars[tag] == pytest.approx({row["epoch"]: value(row) for row in rows}, rel=1e-6), tag

    before = results_file(workdir).read_text()
    geometry.main(ARGS)
    out = capsys.readouterr().out
    assert printed(out) == {} and "nothing to do" in out
    assert results_file(workdir).read_text() == before

    geometry.main(ARGS + ["--start_epoch", "4", "--skip", "100", "--force"])
    assert list(printed(capsys.readouterr().out)) == [4]
    rerun = read_results(results_file(workdir))
    assert [row["epoch"] for row in rerun] == list(EPOCHS)  # replaced, not appended
    assert rerun[0] == rows[0] and rerun[2] == rows[2]
    # the same checkpoint, rows and draws: the same numbers
    assert {k: v for k, v in rerun[1].items() if k != "seconds"} == {k: v for k, v in rows[1].items() if k != "seconds"}


def test_rows_noise_and_seed_reach_every_checkpoint_and_shards_cover_each_once(workdir, monkeypatch, capsys):
    seen = recording(monkeypatch)
    flags = ["--rows", "40", "--noise", "0.3", "0.7", "--seed", "3"]
    geometry.main(ARGS + flags + ["--start_epoch", "4"])
    rows = read_results(results_file(workdir))
    assert [row["epoch"] for row in rows] == [4, 6]
    split, split_labels = load_arrays("cinic10", "data", "test")
    subset = seen["images"][0]
    # one subset of 40 distinct images for every checkpoint, each paired with its own label
    assert len(seen["images"]) == 2 and np.array_equal(seen["images"][1], subset)
    index = [int(np.flatnonzero((split == image).all(axis=(1, 2, 3)))[0]) for image in subset]
    assert len(set(index)) == 40
    for row, (features, labels, _, options) in zip(rows, seen["information"]):
        assert labels.tolist() == [int(split_labels[i]) for i in index] and options["seed"] == 3
        assert (row["rows"], row["images"], row["noise"], row["seed"]) == (40, 40, [0.3, 0.7], 3)
        torch.testing.assert_close(features, hand_features(workdir, row["epoch"], subset), rtol=1e-4, atol=1e-5)
        assert_row_measures(row, features, labels, [0.3, 0.7], seed=3)

    # A later call for every epoch measures only the one not done, on the same subset.
    seen["images"].clear()
    capsys.readouterr()
    geometry.main(ARGS + flags)
    out = capsys.readouterr().out
    assert "skipping epoch(s) 4, 6" in out and list(printed(out)) == [2]
    assert len(seen["images"]) == 1 and np.array_equal(seen["images"][0], subset)
    rows = read_results(results_file(workdir))
    assert [row["epoch"] for row in rows] == list(EPOCHS)

    # Shards of that call, each a call of its own: the same subset, so the rows of one call.
    seen["images"].clear()
    shards = []
    for shard in ("0/2", "1/2"):
        path = workdir / f"shard{shard[0]}.jsonl"
        geometry.main(ARGS + flags + ["--shard", shard, "--results", str(path)])
        shards.append(read_results(path))
    assert [[row["epoch"] for row in part] for part in shards] == [[2, 6], [4]]
    assert all(np.array_equal(images, subset) for images in seen["images"]) and len(seen["images"]) == 3
    strip = lambda row: {k: v for k, v in row.items() if k != "seconds"}  # noqa: E731
    assert [strip(row) for row in shards[0] + shards[1]] == [strip(rows[0]), strip(rows[2]), strip(rows[1])]

    # Another --seed draws another subset (the check above could tell them apart).
    seen["images"].clear()
    geometry.main(ARGS + ["--rows", "40", "--seed", "4", "--start_epoch", "6", "--results", "seed4.jsonl"])
    assert not np.array_equal(seen["images"][0], subset)


def test_a_class_with_one_image_among_the_rows_gives_a_row_without_a_held_out_value(workdir, capsys):
    # The fake CIFAR-100's 160 evaluation images leave 40 of its 100 classes with a single image.
    geometry.main(ARGS[:2] + ["--dataset", "cifar100"] + ARGS[4:] + ["--start_epoch", "6"])
    row, = read_results(results_file(workdir, "cifar100"))
    images, labels = load_arrays("cifar100", "data", "test")
    assert np.bincount(labels).min() == 1 and row["images"] == 160
    assert all(level["i_ty_heldout"] is None and math.isfinite(level["i_ty"]) for level in row["information"])
    assert_row_measures(row, hand_features(workdir, 6, images, "cifar100"), torch.as_tensor(labels),
                        [0.25, 0.5, 1.0], seed=0)
    assert list(printed(capsys.readouterr().out)) == [6]


# --------------------------------------------------------------------------- faults and bad input

def test_a_rerun_with_other_settings_is_refused_in_one_line(workdir, capsys):
    geometry.main(ARGS + ["--start_epoch", "6"])
    before = results_file(workdir).read_bytes()
    line = one_line_error(in_process(geometry.main, ARGS + ["--start_epoch", "6", "--noise", "0.5"], capsys))
    assert "made with other settings: noise [0.25, 0.5, 1.0] (now [0.5])" in line and "--force" in line
    assert results_file(workdir).read_bytes() == before
    geometry.main(ARGS + ["--start_epoch", "6", "--noise", "0.5", "--force"])
    row, = read_results(results_file(workdir))
    assert row["noise"] == [0.5] and [level["noise"] for level in row["information"]] == [0.5]


def test_a_corrupt_checkpoint_is_named_the_others_still_measured_and_the_exit_is_non_zero(workdir, capsys):
    corrupt = checkpoint_path(workdir / "save" / "model" / RUN_NAME, 4)
    corrupt.write_bytes(b"PK\x03\x04 not really a zip file")
    result = in_process(geometry.main, ARGS, capsys)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.count(corrupt.name) == 1 and "1 of 3 checkpoint(s) could not be measured" in result.stderr
    assert list(printed(result.stdout)) == [2, 6]
    assert [row["epoch"] for row in read_results(results_file(workdir))] == [2, 6]


def test_a_checkpoint_whose_features_are_all_equal_is_named_and_the_others_still_measured(workdir, capsys):
    # Every weight zero: each convolution gives 0, each BatchNorm its bias 0, so every image's feature is 0.
    path = checkpoint_path(workdir / "save" / "model" / RUN_NAME, 4)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"] = {key: torch.zeros_like(value) if value.is_floating_point() else value
                           for key, value in checkpoint["model"].items()}
    torch.save(checkpoint, path)
    result = in_process(geometry.main, ARGS, capsys)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{path.name} gives the same feature for every image measured" in result.stderr
    assert "1 of 3 checkpoint(s) could not be measured (epochs 4" in result.stderr
    assert [row["epoch"] for row in read_results(results_file(workdir))] == [2, 6]


def test_bad_flags_end_in_one_line_each_and_write_nothing(workdir, capsys):
    for flags, message in ((["--noise", "-0.5"], "argument --noise: must be positive"),
                           (["--rows", "1"], "--rows must be at least 2"),
                           (["--noise", "0.5", "0"], "argument --noise: must be positive"),
                           (["--rows", "0"], "argument --rows: must be positive"),
                           (["--rows", "121"], "--rows 121 is more than the 120 evaluation images of cinic10"),
                           (["--shard", "2/2"], "--shard must look like i/n with 0 <= i < n"),
                           (["--start_epoch", "3", "--skip", "4"], "matches --start_epoch 3 --skip 4")):
        line = one_line_error(in_process(geometry.main, ARGS + flags, capsys))
        assert message in line, line
    assert not results_file(workdir).exists()
    line = one_line_error(in_process(geometry.main, ["--model", "resnet8", "--device", "cpu"], capsys))
    assert "--ckpt_path is required" in line and "--calibrate" in line


# --------------------------------------------------------------------------- calibration

def test_gaussian_calibration_writes_rows_of_truth_and_estimate(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    geometry.main(["--calibrate", "gaussian", "--dim", "2", "--rows", "500", "--noise", "1", "2", "--seed", "1",
                   "--device", "cpu", "--results", "calibration.jsonl"])
    rows = read_results(tmp_path / "calibration.jsonl")
    # D = 2: the truth is log(1 + 1/s^2) = log 2 and log 1.25
    assert [(row["problem"], row["quantity"], row["noise"], row["dim"], row["rows"], row["seed"]) for row in rows] == [
        ("gaussian", "i_xt", 1.0, 2, 500, 1), ("gaussian", "i_xt", 2.0, 2, 500, 1)]
    assert [row["true_mi"] for row in rows] == pytest.approx([math.log(2), math.log(1.25)])
    for row in rows:
        assert abs(row["estimate"] - row["true_mi"]) < 0.1 * row["true_mi"] and row["within_tolerance"]
    out = capsys.readouterr().out
    assert "noisy-feature information, calibration: gaussian, dim 2, 500 rows" in out
    assert out.count("within 10%") == 2


def test_classes_calibration_writes_both_quantities_per_separation(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    geometry.main(["--calibrate", "classes", "--dim", "3", "--rows", "300", "--classes", "3", "--separation", "0",
                   "12", "--noise", "1", "--device", "cpu", "--results", "calibration.jsonl"])
    rows = read_results(tmp_path / "calibration.jsonl")
    assert [(row["separation"], row["quantity"]) for row in rows] == [(0.0, "i_xt"), (0.0, "i_ty"), (12.0, "i_xt"),
                                                                      (12.0, "i_ty")]
    by = {(row["separation"], row["quantity"]): row for row in rows}
    # Separation 0: one Gaussian of variance 1 + s^2 = 2, I(T_s;Y) = 0 and I(X;T_s) = 3/2 log 2.
    assert by[0.0, "i_ty"]["true_mi"] == pytest.approx(0, abs=1e-12) and abs(by[0.0, "i_ty"]["estimate"]) < 0.05
    assert by[0.0, "i_xt"]["true_mi"] == pytest.approx(1.5 * math.log(2), abs=4 * by[0.0, "i_xt"]["true_mi_stderr"])
    # Separation 12 (~8.5 sigma): the label is read off the features, I(T_s;Y) = log 3.
    assert by[12.0, "i_ty"]["true_mi"] == pytest.approx(math.log(3), rel=1e-3)
    assert by[12.0, "i_ty"]["estimate"] == pytest.approx(math.log(3), rel=0.02)
    assert all(row["classes"] == 3 and "true_mi" in row and "estimate" in row for row in rows)
    assert "calibration: classes, dim 3, 300 rows, 3 classes" in capsys.readouterr().out
