"""The real-photograph study: data preparation, the steps it runs, and the report's numbers.

The whole study at toy size runs through `STUDY_SMOKE=1 make study`, not here. Tests that
read the CIFAR-10 JPEG archive are skipped when it is absent; the report's arithmetic is
also checked on hand-written results files whose numbers are worked out below.
"""
import csv
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

import mine
import train_vanilla
import transfer
from scripts import real_study, real_study_data, study_report
from scripts.cifar10_jpg import ARCHIVE

needs_archive = pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"the CIFAR-10 JPEG archive is not at {ARCHIVE}")
SOURCE_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
TARGET_CLASSES = ["dog", "frog", "horse", "ship", "truck"]


# --------------------------------------------------------------------------- data preparation

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """6 train and 3 test images per class of each task, in the study's layout."""
    if not ARCHIVE.is_file():
        pytest.skip(f"the CIFAR-10 JPEG archive is not at {ARCHIVE}")
    out = tmp_path_factory.mktemp("study") / "data"
    real_study_data.prepare(out, 6, 3, archive=str(ARCHIVE))
    return out


def archive_images():
    """{(split, class, file name): bytes} of the whole archive."""
    with tarfile.open(ARCHIVE) as tar:
        return {tuple(Path(m.name).parts[-3:]): tar.extractfile(m).read()
                for m in tar if m.isfile() and len(Path(m.name).parts) >= 3}


def written(folder):
    return sorted(path for path in Path(folder).rglob("*.jpg"))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_archive
def test_each_class_lands_in_its_task_with_its_own_images(tiny_data):
    originals = archive_images()
    for task, classes in (("source", SOURCE_CLASSES), ("target", TARGET_CLASSES)):
        for split, count in (("train", 6), ("test", 3)):
            folder = tiny_data / task / split
            assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == classes
            for name in classes:
                images = written(folder / name)
                assert len(images) == count
                # byte for byte the archive's image of that split and class
                assert all(image.read_bytes() == originals[split, name, image.name] for image in images)
    assert not set(real_study_data.TASKS["source"]) & set(real_study_data.TASKS["target"])


@needs_archive
def test_no_image_is_in_both_training_and_test_split_nor_in_both_tasks(tiny_data):
    by_part = {(task, split): {digest(p) for p in written(tiny_data / task / split)}
               for task in ("source", "target") for split in ("train", "test")}
    for task in ("source", "target"):
        assert len(by_part[task, "train"]) == 30 and len(by_part[task, "test"]) == 15  # all distinct
        assert not by_part[task, "train"] & by_part[task, "test"]
    assert not (by_part["source", "train"] | by_part["source", "test"]) & (
        by_part["target", "train"] | by_part["target", "test"])


@needs_archive
def test_preparing_again_keeps_the_data_and_other_sizes_are_refused(tiny_data):
    before = {p: p.stat().st_mtime_ns for p in written(tiny_data)}
    assert real_study_data.prepare(tiny_data, 6, 3)["per_class"] == {"train": 6, "test": 3}
    assert {p: p.stat().st_mtime_ns for p in written(tiny_data)} == before
    with pytest.raises(real_study_data.util.UserError, match="not 7 train"):
        real_study_data.prepare(tiny_data, 7, 3)


def test_a_missing_archive_is_one_line_saying_how_to_get_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        real_study_data.main([str(tmp_path / "data"), "--archive", str(tmp_path / "absent.tar.gz")])
    assert stop.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "absent.tar.gz not found" in lines[0]
    assert "--archive PATH" in lines[0] and "cifar-10-python.tar.gz" in lines[0]
    assert not (tmp_path / "data").exists()


def test_the_study_stops_on_a_missing_archive_with_that_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the study changes into its folder
    monkeypatch.setenv("STUDY_DIR", str(tmp_path / "study"))
    monkeypatch.setenv("STUDY_PROFILE", "cpu")
    monkeypatch.setenv("MINE_PROTOCOLS", "reference")  # fewer steps to check; the data is missing anyway
    with pytest.raises(SystemExit) as stop:
        real_study.main(["--archive", str(tmp_path / "absent.tar.gz")])
    assert stop.value.code != 0
    captured = capsys.readouterr()
    assert "plan (cpu profile)" in captured.out
    assert captured.err.count("\n") == 1 and "absent.tar.gz not found" in captured.err
    assert not (tmp_path / "study" / "save").exists()


# --------------------------------------------------------------------------- the steps

def smoke(**overrides):
    return real_study.settings("smoke", {key.upper(): value for key, value in overrides.items()})


def test_profiles_analyse_at_least_twelve_checkpoints_ending_at_the_last_epoch():
    for name in ("cpu", "gpu"):
        profile = real_study.PROFILES[name]
        assert profile.epochs // profile.save_freq >= 12 and profile.epochs % profile.save_freq == 0
        assert len(profile.seeds.split()) >= 2
    assert real_study.PROFILES["gpu"].train_per_class == real_study.PROFILES["gpu"].test_per_class == "all"
    assert [real_study.stage_two(e) for e in (300, 48, 3)] == [200, 32, 2]  # the paper's 200 of 300


def test_environment_overrides_sizes_and_refuses_nonsense():
    assert smoke(epochs="5", seeds="3 4 5").epochs == 5
    with pytest.raises(real_study.util.UserError, match="EPOCHS"):
        smoke(epochs="five")
    with pytest.raises(real_study.util.UserError, match="MINE_PROTOCOLS"):
        smoke(mine_protocols="reference bogus")
    with pytest.raises(real_study.util.UserError, match="multiple of SAVE_FREQ"):
        smoke(epochs="5", save_freq="2")
    assert smoke(train_per_class="all", xt_iters="1e+4").xt_iters == "1e+4"  # passed on as spelled
    for bad, message in ((dict(train_per_class="abc"), "train images per class"),
                         (dict(test_per_class="0"), "test images per class"),
                         (dict(xt_iters="x"), "XT_ITERS"), (dict(ty_lr="-1e-3"), "TY_LR")):
        with pytest.raises(real_study.util.UserError, match=message):
            smoke(**bad)


def test_every_seed_is_its_own_pair_of_runs_and_every_checkpoint_is_analysed():
    s = smoke(mine_protocols="reference heldout", save_freq="2", epochs="6")
    (runs0, steps0), (runs1, _) = real_study.seed_steps(s, "0"), real_study.seed_steps(s, "1")
    assert runs0 == ["resnet8_folder-source_lr_0.05_trial_s0_vanilla", "resnet8_folder-source_a:0.5_b:1.0_ctc_s0"]
    assert not set(runs0) & set(runs1)
    by_name = {step.name: step for step in steps0}
    ctc = by_name[f"train_{runs0[1]}"].argv
    assert ctc[ctc.index("--stage_two_epoch") + 1] == "4" and ctc[ctc.index("--seed") + 1] == "0"
    for run in runs0:
        names = [name for name in by_name if name.endswith(run) and not name.startswith("train")]
        assert sorted(names) == sorted([f"transfer_train_bn_{run}", f"transfer_adabn_{run}"] + [
            f"mine_{mode}_{task}{suffix}_{run}" for mode in ("xt", "ty") for task in ("source", "target")
            for suffix in ("", "_heldout")])
        for name in names:
            argv = by_name[name].argv
            assert argv[argv.index("--start_epoch") + 1] == argv[argv.index("--skip") + 1] == "2"
            if name.startswith("mine"):  # the reference protocol is mine.py's default: no --protocol flag
                assert ("--protocol" in argv) == ("_heldout_" in name)


def test_a_flag_the_scripts_do_not_know_stops_the_study_before_any_work():
    s = smoke(mine_args="--no_such_flag")
    _, steps = real_study.seed_steps(s, "0")
    real_study.check_command_lines([step for step in steps if step.script != "mine"])
    with pytest.raises(real_study.util.UserError, match="no_such_flag"):
        real_study.check_command_lines(steps)


def test_training_resumes_a_run_that_holds_a_last_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    step = real_study.Step("train_x", "train_vanilla", ["--epochs", "3"], resumes="x")
    assert step.arguments("resnet8") == ["--epochs", "3"]
    (tmp_path / "save/model/x").mkdir(parents=True)
    (tmp_path / "save/model/x/resnet8_last.pth").write_bytes(b"")
    assert step.arguments("resnet8") == ["--epochs", "3", "--resume"]


def exits(code):
    raise SystemExit(code)


def test_a_step_runs_in_a_child_and_reports_its_exit_code():
    assert real_study.forked(lambda: None) == 0
    assert real_study.forked(lambda: 3) == 3
    assert real_study.forked(lambda: exits(2)) == 2
    assert real_study.forked(lambda: 1 / 0) == 1


# --------------------------------------------------------------------------- the report

METRICS_FIELDS = ["epoch", "lr", "train_loss", "train_top1", "test_loss", "test_top1", "seconds"]


def write_run(folder, test_top1, transfer_acc, mine_rows=None):
    """A run folder: metrics.csv with test_top1 per epoch, transfer files {probe: {epoch: fraction}},
    MINE files {file name: {epoch: estimate}}."""
    folder.mkdir(parents=True)
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, METRICS_FIELDS)
        writer.writeheader()
        for epoch, top1 in test_top1.items():
            writer.writerow({"epoch": epoch, "lr": 0.05, "train_loss": 1.0, "train_top1": 50, "test_loss": 1.0,
                             "test_top1": top1, "seconds": 1.0})
    for probe, values in transfer_acc.items():
        (folder / f"transfer_folder-target_{probe}.jsonl").write_text("".join(
            json.dumps({"epoch": e, "protocol": probe, "best_acc": a}) + "\n" for e, a in values.items()))
    for name, values in (mine_rows or {}).items():
        (folder / name).write_text("".join(
            json.dumps({"epoch": e, "estimate": v, "stderr": 0.01, "iteration": 100}) + "\n" for e, v in values.items()))
    return folder


def hand_written_study(root, heldout_everywhere=True):
    # vanilla s0: source keeps rising, transfer peaks at 4 (0.60) and ends at 0.50.
    # vanilla s1: transfer peaks at 2 (0.58) and ends at 0.54.
    # CTC s0 / s1: transfer peaks at the end (0.62 and 0.64).
    mine_files = {"mine_xt_folder-source.jsonl": {2: 3.0, 4: 2.5, 6: 2.0},
                  "mine_ty_folder-source.jsonl": {2: 0.5, 4: 0.9, 6: 1.1}}
    heldout = {"mine_xt_folder-source_heldout.jsonl": {2: 1.0, 4: 0.8, 6: 0.6},
               "mine_ty_folder-source_heldout.jsonl": {2: 0.4, 4: 0.7, 6: 0.9}}
    runs = {
        "v0": write_run(root / "v0", {1: 30, 2: 40, 3: 45, 4: 50, 5: 55, 6: 60},
                        {"train_bn": {2: 0.55, 4: 0.60, 6: 0.50}, "adabn": {2: 0.5, 4: 0.5, 6: 0.5}},
                        {**mine_files, **heldout}),
        "v1": write_run(root / "v1", {1: 32, 2: 44, 3: 46, 4: 52, 5: 53, 6: 58},
                        {"train_bn": {2: 0.58, 4: 0.56, 6: 0.54}}, {**mine_files, **heldout}),
        "c0": write_run(root / "c0", {1: 31, 2: 41, 3: 47, 4: 51, 5: 56, 6: 61},
                        {"train_bn": {2: 0.55, 4: 0.60, 6: 0.62}}, {**mine_files, **heldout}),
        "c1": write_run(root / "c1", {1: 33, 2: 43, 3: 48, 4: 53, 5: 57, 6: 59},
                        {"train_bn": {2: 0.56, 4: 0.63, 6: 0.64}},
                        {**mine_files, **(heldout if heldout_everywhere else {})}),
    }
    return ["--group", "vanilla", str(runs["v0"]), str(runs["v1"]), "--group", "CTC", str(runs["c0"]), str(runs["c1"])]


def test_the_table_holds_the_numbers_worked_out_by_hand(tmp_path, capsys):
    groups = hand_written_study(tmp_path)
    study_report.main([*groups, "--out", str(tmp_path / "report" / "study")])
    table = study_report.table_numbers(load_groups(groups), "train_bn")
    assert table["vanilla"]["runs"]["v0"] == {
        "best_source": 60, "best_source_epoch": 6, "last_source": 60, "best_transfer": 60, "peak_epoch": 4,
        "last_transfer": 50, "last_epoch": 6, "drop": pytest.approx(10), "source_gain_after_peak": 10}
    vanilla = table["vanilla"]
    assert vanilla["mean"]["drop"] == pytest.approx((10 + 4) / 2)  # v1: 58 at epoch 2, 54 at the end
    assert (vanilla["min"]["peak_epoch"], vanilla["max"]["peak_epoch"]) == (2, 4)
    assert vanilla["mean"]["source_gain_after_peak"] == pytest.approx((10 + 14) / 2)  # v1: 58 - 44
    assert table["CTC"]["mean"]["last_transfer"] == pytest.approx(63) and table["CTC"]["max"]["drop"] == 0
    text = (tmp_path / "report" / "study.md").read_text()
    assert "| vanilla | 2 | 59.00 [58.00, 60.00] | 59.00 [58.00, 60.00] | 59.00 [58.00, 60.00] | 3.0 [2.0, 4.0] " \
           "| 52.00 [50.00, 54.00] | 7.00 [4.00, 10.00] | 12.00 [10.00, 14.00] |" in text
    assert "| v0 | 60.00 | 60.00 | 60.00 | 4 | 50.00 | 10.00 | 10.00 | 6 |" in text
    assert "CTC minus vanilla: +11.00 pp (spread between seeds, max minus min: vanilla 4.00 pp, CTC 2.00 pp)" in text
    # the mean curve: vanilla 56.5 / 58 / 52 peaks at 4; per seed 60 - 50 = 10 and 56 - 54 = 2: drop 6,
    # standard error sd(10, 2) / sqrt(2) = 4; CTC 55.5 / 61.5 / 63 peaks at the end
    assert "Mean curve over the 2 vanilla seeds: peak 58.00% at epoch 4, 52.00% at the last checkpoint (epoch 6): " \
           "drop 6.00 +- 4.00 pp" in text
    assert "Mean curve over the 2 CTC seeds: peak 63.00% at epoch 6, 63.00% at the last checkpoint (epoch 6): " \
           "drop 0.00 +- 0.00 pp" in text
    assert "Mean curve over the 1 vanilla seeds: peak 50.00% at epoch 2, 50.00% at the last checkpoint (epoch 6): " \
           "drop 0.00 pp" in text.split("probe adabn")[1]
    # every checkpoint: vanilla source, train_bn, adabn (v0 only: no error), CTC source, train_bn
    assert "| epoch | vanilla source | vanilla train_bn | vanilla adabn | CTC source | CTC train_bn |" in text
    assert "| 2 | 42.00 +- 2.00 | 56.50 +- 1.50 | 50.00 | 42.00 +- 1.00 | 55.50 +- 0.50 |" in text
    assert "| 6 | 59.00 +- 1.00 | 52.00 +- 2.00 | 50.00 | 60.00 +- 1.00 | 63.00 +- 1.00 |" in text
    # adabn: only v0 has it; its row is there and no other run's
    adabn = text.split("probe adabn")[1]
    assert "| vanilla | 1 | 60.00 [60.00, 60.00]" in adabn and "| CTC | 0 | - |" in adabn
    # MINE: first -> at the train_bn peak -> last, mean over seeds: vanilla peaks at 4 and 2
    assert "| I(X;T) on source test images, reference protocol | 3.000 -> 2.750 -> 2.000 | 3.000 -> 2.000 -> 2.000 |" in text
    assert "| I(T;Y) on source test images, heldout protocol | 0.400 -> 0.550 -> 0.900 |" in text
    assert (tmp_path / "report" / "study_tradeoff.png").stat().st_size > 10000
    assert "_infoplane.png (MINE protocol: source heldout)" in capsys.readouterr().out


def load_groups(argv):
    args = study_report.parse_args(argv)
    tags = {"source": args.source_tag, "target": args.target_tag}
    return {method: [study_report.load_run(Path(name), method, tags) for name in names]
            for method, *names in args.group}


def test_the_information_plane_uses_heldout_estimates_only_where_every_run_has_them(tmp_path):
    groups = load_groups(hand_written_study(tmp_path / "all"))
    assert study_report.draw_infoplane(groups, tmp_path / "all.png") == {"source": "heldout"}
    groups = load_groups(hand_written_study(tmp_path / "some", heldout_everywhere=False))
    assert study_report.draw_infoplane(groups, tmp_path / "some.png") == {"source": "reference"}
    assert (tmp_path / "some.png").is_file()


@needs_archive
def test_the_table_matches_the_results_files_of_real_runs(tiny_data, tmp_path, monkeypatch, one_thread):
    """A resnet8 run on the tiny slice, probed and measured by the scripts themselves: every
    number of its table row is recomputed here from metrics.csv and the JSON-lines files."""
    monkeypatch.chdir(tmp_path)  # runs go to save/ here; the data is the study's layout
    (tmp_path / "data").symlink_to(tiny_data)
    source, target = "folder:data/source", "folder:data/target"
    train_vanilla.main(["--dataset", source, "--model", "resnet8", "--epochs", "3", "--save_freq", "1",
                        "--batch_size", "10", "--num_workers", "0", "--print_freq", "1000", "--trial", "s0",
                        "--note", "vanilla"])
    run = next((tmp_path / "save" / "model").iterdir())
    every = ["--model", "resnet8", "--ckpt_path", str(run), "--start_epoch", "1", "--skip", "1"]
    transfer.main(["--source_dataset", source, "--target_dataset", target, *every, "--epoch", "2",
                   "--batch", "16", "--protocol", "adabn"])
    mine.main(["--mode", "ty", "--dataset", target, "--source_dataset", source, *every, "--iter_num", "5",
               "--batch_size", "10", "--hidden_size", "8"])
    study_report.main(["--group", "vanilla", str(run), "--out", str(tmp_path / "report")])

    top1 = {int(row["epoch"]): float(row["test_top1"]) for row in csv.DictReader(open(run / "metrics.csv"))}
    acc = {row["epoch"]: 100 * row["best_acc"] for row in map(json.loads, open(run / "transfer_folder-target_adabn.jsonl"))}
    peak = max(acc, key=lambda e: (acc[e], -e))
    expected = [max(top1.values()), top1[3], acc[peak], peak, acc[3], acc[peak] - acc[3], top1[3] - top1[peak]]
    text = (tmp_path / "report.md").read_text()
    row = next(line for line in text.split("probe adabn")[1].splitlines() if line.startswith(f"| {run.name} |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")][1:-1]
    assert cells == [str(value) if isinstance(value, int) else f"{value:.2f}" for value in expected]
    estimates = [row["estimate"] for row in map(json.loads, open(run / "mine_ty_folder-target.jsonl"))]
    assert f"| {estimates[0]:.3f} -> " in text.split("I(T;Y) on target test images, reference protocol")[1]


def test_the_mean_curve_uses_the_epochs_every_seed_has():
    """A seed still being analysed (no row yet for epoch 6) leaves epoch 6 out of the mean curve
    instead of comparing one seed's epoch 6 with another's epoch 4."""
    done = study_report.StudyRun("s0", "vanilla", {}, {"train_bn": {2: 50.0, 4: 60.0, 6: 40.0}})
    partial = study_report.StudyRun("s1", "vanilla", {}, {"train_bn": {2: 54.0, 4: 56.0}})
    curve = study_report.mean_curve([done, partial], "train_bn")
    assert curve == {"seeds": 2, "peak_epoch": 4, "peak": 58.0, "last_epoch": 4, "last": 58.0,
                     "drop": 0.0, "drop_stderr": 0.0}
