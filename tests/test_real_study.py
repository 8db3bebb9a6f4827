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

import geometry
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


@needs_archive
def test_the_coarse_layout_labels_superclasses_and_keeps_the_next_images_for_the_fine_target(tmp_path):
    out = real_study_data.prepare(tmp_path / "data", 3, 2, archive=str(ARCHIVE), tasks="coarse")
    assert out["per_class"] == {"train": 3, "test": 2}
    originals = archive_images()
    data = tmp_path / "data"
    for split, count in (("train", 3), ("test", 2)):
        assert sorted(p.name for p in (data / "source" / split).iterdir()) == ["animal", "vehicle"]
        vehicles = sorted(p.name for p in (data / "source" / split / "vehicle").iterdir())
        assert len(vehicles) == 4 * count and {name.split("_")[0] for name in vehicles} == {
            "airplane", "automobile", "ship", "truck"}
        assert len(written(data / "source" / split / "animal")) == 6 * count
        for name in real_study_data.CLASSES:
            numbers = sorted(number for (s, c, number) in originals if s == split and c == name)
            source = sorted(p.name.split("_", 1)[1] for p in (data / "source" / split).rglob(f"{name}_*"))
            target = sorted(p.name for p in (data / "target" / split / name).iterdir())
            # the source task takes each class's lowest numbers, the target task the next ones
            assert source == numbers[:count] and target == numbers[count:2 * count]
    with pytest.raises(real_study_data.util.UserError, match="other tasks"):
        real_study_data.prepare(data, 3, 2, tasks="pairs")
    assert real_study_data.counts("all", "all", "coarse") == {"train": 2500, "test": 500}  # half a class each
    assert real_study_data.task_images("coarse", {"train": 3, "test": 2}) == {
        ("source", "train"): 30, ("source", "test"): 20, ("target", "train"): 30, ("target", "test"): 20}


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
    assert [real_study.ctc_epochs(e) for e in (200, 48, 4)] == [300, 72, 6]  # the paper's 200 and 300


def test_the_control_profile_is_the_cpu_design_on_the_scrambled_layout_with_fresh_seeds():
    control, cpu = real_study.PROFILES["control"], real_study.PROFILES["cpu"]
    assert (control.tasks, control.train_args, control.methods) == ("scrambled", "--aug mine", "vanilla")
    # the checkpoints the power simulation assumes, and seeds other than seed 0, which chose the setting
    assert (control.epochs, control.save_freq, control.model) == (cpu.epochs, cpu.save_freq, cpu.model)
    assert len(control.seeds.split()) >= 4 and "0" not in control.seeds.split()
    assert real_study.choose_profile({"STUDY_PROFILE": "control"}) == "control"
    with pytest.raises(real_study.util.UserError, match="cpu, control or gpu"):
        real_study.choose_profile({"STUDY_PROFILE": "fast"})
    # METHODS="vanilla ctc" beside it: CTC's 72 epochs end on a checkpoint too
    assert real_study.settings("control", {"METHODS": "vanilla ctc"}).methods == "vanilla ctc"


def test_environment_overrides_sizes_and_refuses_nonsense():
    assert smoke(epochs="4", seeds="3 4 5").epochs == 4
    with pytest.raises(real_study.util.UserError, match="EPOCHS"):
        smoke(epochs="five")
    with pytest.raises(real_study.util.UserError, match="MINE_PROTOCOLS"):
        smoke(mine_protocols="reference bogus")
    with pytest.raises(real_study.util.UserError, match="multiples of SAVE_FREQ"):
        smoke(epochs="5", save_freq="2")
    with pytest.raises(real_study.util.UserError, match="CTC's 1.5 x EPOCHS"):
        smoke(epochs="6", save_freq="2")  # CTC would end at epoch 9, between checkpoints
    assert smoke(epochs="6", save_freq="2", methods="vanilla").epochs == 6  # no CTC run, no such constraint
    for bad, message in ((dict(methods="vanilla bogus"), "METHODS"), (dict(probes="frozen"), "PROBES"),
                         (dict(methods=""), "METHODS"), (dict(tasks="thirds"), "task layout")):
        with pytest.raises(real_study.util.UserError, match=message):
            smoke(**bad)
    assert smoke(train_per_class="all", xt_iters="1e+4").xt_iters == "1e+4"  # passed on as spelled
    for bad, message in ((dict(train_per_class="abc"), "train images per class"),
                         (dict(test_per_class="0"), "test images per class"),
                         (dict(xt_iters="x"), "XT_ITERS"), (dict(ty_lr="-1e-3"), "TY_LR")):
        with pytest.raises(real_study.util.UserError, match=message):
            smoke(**bad)


def test_every_seed_is_its_own_pair_of_runs_and_every_checkpoint_is_analysed():
    s = smoke(mine_protocols="reference heldout", save_freq="3", epochs="6")
    (runs0, steps0), (runs1, _) = real_study.seed_steps(s, "0"), real_study.seed_steps(s, "1")
    assert runs0 == ["resnet8_folder-source_lr_0.05_trial_s0_vanilla", "resnet8_folder-source_a:0.5_b:1.0_ctc_s0"]
    assert not set(runs0) & set(runs1)
    by_name = {step.name: step for step in steps0}
    ctc = by_name[f"train_{runs0[1]}"].argv
    # the paper's schedule: stage one as long as vanilla's run, then half as long again
    assert ctc[ctc.index("--epochs") + 1] == "9" and ctc[ctc.index("--stage_two_epoch") + 1] == "6"
    assert ctc[ctc.index("--seed") + 1] == "0"
    for run in runs0:
        names = [name for name in by_name if name.endswith(run) and not name.startswith("train")]
        assert sorted(names) == sorted([f"transfer_train_bn_{run}", f"transfer_adabn_{run}"] + [
            f"mine_{mode}_{task}{suffix}_{run}" for mode in ("xt", "ty") for task in ("source", "target")
            for suffix in ("", "_heldout")] + [f"geometry_{task}_{run}" for task in ("source", "target")])
        for name in names:
            argv = by_name[name].argv
            assert argv[argv.index("--start_epoch") + 1] == argv[argv.index("--skip") + 1] == "3"
            if name.startswith("mine"):  # the reference protocol is mine.py's default: no --protocol flag
                assert ("--protocol" in argv) == ("_heldout_" in name)


def test_methods_and_probes_choose_the_steps_and_nce_k_stays_within_the_negative_pool():
    s = smoke(methods="vanilla", probes="adabn", mine_protocols="")
    runs, steps = real_study.seed_steps(s, "0")
    assert runs == ["resnet8_folder-source_lr_0.05_trial_s0_vanilla"]
    assert [step.name.rsplit("_resnet8", 1)[0] for step in steps] == [
        "train", "transfer_adabn", "geometry_source", "geometry_target"]
    # halves: 5 classes of N images, so a sample's other-class pool is 4 N; coarse: 2 superclasses of
    # 4 and 6 classes of N images, the vehicles' pool is the 6 N animals
    assert real_study.nce_k(smoke(train_per_class="300", nce_k="512")) == 512
    assert real_study.nce_k(smoke(train_per_class="100", nce_k="512")) == 400
    assert real_study.nce_k(smoke(train_per_class="50", nce_k="512", tasks="coarse")) == 200
    ctc = real_study.ctc_argv(smoke(train_per_class="100", nce_k="512"), "0")
    assert ctc[ctc.index("--nce_k") + 1] == "400"


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


def write_run(folder, test_top1, transfer_acc, mine_rows=None, geometry_rows=None):
    """A run folder: metrics.csv with test_top1 per epoch, transfer files {probe: {epoch: fraction}}
    (the probe's last epoch 0.01 below its best), MINE files {file name: {epoch: estimate}},
    geometry files {file name: {epoch: (nc1, i_xt at s = 0.5, i_ty at s = 0.5)}}."""
    folder.mkdir(parents=True)
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, METRICS_FIELDS)
        writer.writeheader()
        for epoch, top1 in test_top1.items():
            writer.writerow({"epoch": epoch, "lr": 0.05, "train_loss": 1.0, "train_top1": 50, "test_loss": 1.0,
                             "test_top1": top1, "seconds": 1.0})
    for probe, values in transfer_acc.items():
        (folder / f"transfer_folder-target_{probe}.jsonl").write_text("".join(
            json.dumps({"epoch": e, "protocol": probe, "best_acc": a, "final_acc": a - 0.01}) + "\n"
            for e, a in values.items()))
    for name, values in (mine_rows or {}).items():
        (folder / name).write_text("".join(
            json.dumps({"epoch": e, "estimate": v, "stderr": 0.01, "iteration": 100}) + "\n" for e, v in values.items()))
    for name, values in (geometry_rows or {}).items():
        (folder / name).write_text("".join(json.dumps(
            {"epoch": e, "nc1": nc1, "effective_rank": 3.0, "cdnv": 0.5, "class_separation": 0.2, "feature_norm": 1.0,
             "information": [{"noise": 0.5, "i_xt": xt, "i_ty": ty}, {"noise": 1.0, "i_xt": xt / 2, "i_ty": ty / 2}]})
            + "\n" for e, (nc1, xt, ty) in values.items()))
    return folder


VANILLA_EPOCHS = (2, 4, 6, 8, 10, 12)  # windows: middle 6, 8; last 10, 12
CTC_EPOCHS = (3, 6, 9, 12, 15, 18)     # windows: middle 9, 12; last 15, 18


def hand_written_study(root, geometry_everywhere=True):
    # vanilla s0: train_bn 60, 62 in the middle window, 58, 56 in the last: late drop 61 - 57 = 4
    # vanilla s1: 58, 60 then 58, 57: late drop 59 - 57.5 = 1.5
    # CTC: still rising: s0 60, 61 then 63, 64: late drop 60.5 - 63.5 = -3; s1 59, 60 then 61, 62: -2
    # MINE on source images: vanilla I(X;T) 0.5, 0.6, ... below I(T;Y) at 4 of 6 checkpoints in s0
    mine_files = {"mine_xt_folder-source.jsonl": dict(zip(VANILLA_EPOCHS, (0.5, 0.6, 0.9, 1.0, 0.4, 0.3))),
                  "mine_ty_folder-source.jsonl": dict(zip(VANILLA_EPOCHS, (0.7, 0.8, 0.8, 0.9, 0.5, 0.6)))}
    geometry = {"geometry_folder-source.jsonl": {e: (10.0 / e, 2.0 - e / 10, 0.5) for e in VANILLA_EPOCHS}}
    ctc_geometry = {"geometry_folder-source.jsonl": {e: (1.0, 1.5, 0.4) for e in CTC_EPOCHS}}
    source = {e: 40 + e for e in range(1, 19)}  # rises by 1 a epoch
    runs = {
        "v0": write_run(root / "v0", {e: source[e] for e in range(1, 13)},
                        {"train_bn": dict(zip(VANILLA_EPOCHS, (0.50, 0.55, 0.60, 0.62, 0.58, 0.56))),
                         "adabn": dict(zip(VANILLA_EPOCHS, (0.5,) * 6))}, mine_files, geometry),
        "v1": write_run(root / "v1", {e: source[e] - 2 for e in range(1, 13)},
                        {"train_bn": dict(zip(VANILLA_EPOCHS, (0.52, 0.56, 0.58, 0.60, 0.58, 0.57)))}, None, geometry),
        "c0": write_run(root / "c0", source, {"train_bn": dict(zip(CTC_EPOCHS, (0.50, 0.55, 0.60, 0.61, 0.63, 0.64)))},
                        None, ctc_geometry),
        "c1": write_run(root / "c1", {e: v - 1 for e, v in source.items()},
                        {"train_bn": dict(zip(CTC_EPOCHS, (0.50, 0.55, 0.59, 0.60, 0.61, 0.62)))},
                        None, ctc_geometry if geometry_everywhere else None),
    }
    return ["--group", "vanilla", str(runs["v0"]), str(runs["v1"]), "--group", "CTC", str(runs["c0"]), str(runs["c1"])]


def row_of(text, start):
    return next(line for line in text.splitlines() if line.startswith(start))


def test_the_report_holds_the_numbers_worked_out_by_hand(tmp_path, capsys):
    groups = hand_written_study(tmp_path)
    study_report.main([*groups, "--out", str(tmp_path / "report" / "study"), "--title", "hand-written"])
    text = (tmp_path / "report" / "study.md").read_text()
    assert text.startswith("## hand-written")
    train_bn = text.split("probe train_bn")[1].split("###")[0]
    # vanilla: drops 4 and 1.5: mean 2.75, sd 1.768, standard error 1.25, t(0.975, 1) = 12.706;
    # detectable (12.706 + t(0.8, 1) = 1.376) * 1.25 = 17.60; noise: steps from the third checkpoint
    # 2, -4, -2 and 2, -2, -1: sd 2.401 / sqrt(2) = 1.70; source +4 in both; cross-fitted: v0's peak
    # (epoch 8) measured on v1, 60 - 57 = 3, v1's peak (epoch 8) on v0, 62 - 56 = 6: mean 4.5, error 1.5
    assert row_of(train_bn, "| vanilla | best |") == (
        "| vanilla | best | epochs 6-8 | epochs 10-12 | +2.75 [-13.13, +18.63] (95% interval over 2 seeds) | no | "
        "17.60 | 1.70 | +4.00 [+4.00, +4.00] (95% interval over 2 seeds) | "
        "+4.50 [-14.56, +23.56] (95% interval over 2 seeds) |")
    # the probe's last epoch is 1 point below its best everywhere: the same drop
    assert "| vanilla | last | epochs 6-8 | epochs 10-12 | +2.75 [-13.13, +18.63]" in train_bn
    assert "| CTC | best | epochs 9-12 | epochs 15-18 | -2.50 [-8.85, +3.85] (95% interval over 2 seeds) | no |" \
        in train_bn
    # CTC minus vanilla, paired by seed, at vanilla's last epoch (12): s0 61 - 56 = 5, s1 60 - 57 = 3;
    # at each run's end: 64 - 56 = 8, 62 - 57 = 5; source at 12: 52 - 52 = 0, 51 - 50 = 1
    comparison = text.split("### CTC minus vanilla, paired by seed (pp)")[1].split("###")[0]
    assert "| transfer train_bn (best) | 12 | +4.00 [-8.71, +16.71] (95% interval over 2 seeds) | " \
           "+6.50 [-12.56, +25.56] (95% interval over 2 seeds) |" in comparison
    assert row_of(comparison, "| source test acc |").startswith("| source test acc | 12 | +0.50 ")
    # MINE: 0.5 < 0.7, 0.6 < 0.8, 0.4 < 0.5, 0.3 < 0.6 in v0 (v1 has no MINE files)
    assert ("- vanilla, source test images, MINE reference protocol: **I(X;T) below I(T;Y) at 4 of 6 checkpoints: "
            "violates the data-processing inequality") in text
    assert "| I(X;T) on source test images, reference protocol | 0.500 -> 1.000 -> 0.300 (epochs 2, 8, 12) | - |" \
        in text
    # geometry: NC1 = 10 / epoch, I(X;T_s) at s = 0.5 = 2 - epoch / 10, both seeds alike
    assert "| NC1 on source test images | 5.000 -> 1.250 -> 0.833 (epochs 2, 8, 12) | " \
           "1.000 -> 1.000 -> 1.000 (epochs 3, 12, 18) |" in text
    assert "| I(X;T_s), s = 0.5 on source test images | 1.800 -> 1.200 -> 0.800 (epochs 2, 8, 12) |" in text
    assert "| I(T_s;Y), s = 1 on source test images | 0.250 -> 0.250 -> 0.250 (epochs 2, 8, 12) |" in text
    # every checkpoint: vanilla source, train_bn best/last, adabn best/last (v0 only: no error), CTC source,
    # train_bn best/last (CTC has no checkpoint at epoch 4)
    assert "| 6 | 45.00 +- 1.00 | 59.00 +- 1.00 | 58.00 +- 1.00 | 50.00 | 49.00 | 45.50 +- 0.50 | 55.00 +- 0.00 | " \
           "54.00 +- 0.00 |" in text
    assert "| 4 | 43.00 +- 1.00 | 55.50 +- 0.50 | 54.50 +- 0.50 | 50.00 | 49.00 | 43.50 +- 0.50 | - | - |" in text
    assert (tmp_path / "report" / "study_tradeoff.png").stat().st_size > 10000
    assert "_infoplane.png (source: noisy features, s = 0.5)" in capsys.readouterr().out


def load_groups(argv):
    args = study_report.parse_args(argv)
    tags = {"source": args.source_tag, "target": args.target_tag}
    return {method: [study_report.load_run(Path(name), method, tags) for name in names]
            for method, *names in args.group}


def test_the_information_plane_uses_noisy_features_only_where_every_run_has_them(tmp_path):
    groups = load_groups(hand_written_study(tmp_path / "all"))
    assert study_report.draw_infoplane(groups, tmp_path / "all.png") == {"source": "noisy features, s = 0.5"}
    groups = load_groups(hand_written_study(tmp_path / "some", geometry_everywhere=False))
    # c1 has no geometry: MINE's reference protocol, which v0 has
    assert study_report.draw_infoplane(groups, tmp_path / "some.png") == {"source": "MINE reference protocol"}
    assert (tmp_path / "some.png").is_file()


@needs_archive
def test_the_report_matches_the_results_files_of_real_runs(tiny_data, tmp_path, monkeypatch, one_thread):
    """A resnet8 run on the tiny slice, probed and measured by the scripts themselves: the late
    drop of its report is recomputed here from the JSON-lines files, and its geometry row is there."""
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
    geometry.main(["--dataset", target, "--source_dataset", source, *every])
    study_report.main(["--group", "vanilla", str(run), "--out", str(tmp_path / "report")])

    rows = {row["epoch"]: row for row in map(json.loads, open(run / "transfer_folder-target_adabn.jsonl"))}
    drop = 100 * rows[2]["best_acc"] - 100 * rows[3]["best_acc"]  # 3 checkpoints: windows {2} and {3}
    text = (tmp_path / "report.md").read_text()
    assert row_of(text.split("probe adabn")[1], "| vanilla | best |").startswith(
        f"| vanilla | best | epoch 2 | epoch 3 | {drop:+.2f} (one seed: no interval) | no |")
    nc1 = [json.loads(line)["nc1"] for line in open(run / "geometry_folder-target.jsonl")]
    assert f"| NC1 on target test images | {nc1[0]:.3f} -> {nc1[1]:.3f} -> {nc1[2]:.3f} (epochs 1, 2, 3) |" in text


def test_the_series_use_the_epochs_every_seed_has():
    """A seed still being analysed (no row yet for epoch 8) leaves epoch 8 out instead of comparing
    one seed's epoch 8 with another's epoch 6."""
    done = study_report.StudyRun("s0", "vanilla", {}, {("train_bn", "best"): {2: 50.0, 4: 60.0, 6: 40.0, 8: 1.0}})
    partial = study_report.StudyRun("s1", "vanilla", {}, {("train_bn", "best"): {2: 54.0, 4: 56.0, 6: 50.0}})
    epochs, curves = study_report.aligned([done, partial], lambda run: run.curve("train_bn"))
    assert epochs == [2, 4, 6] and curves == [[50.0, 60.0, 40.0], [54.0, 56.0, 50.0]]
    numbers = study_report.late_drop_numbers([done, partial], lambda run: run.curve("train_bn"))
    assert numbers["middle"] == [4] and numbers["last"] == [6] and numbers["drop"].values == [20.0, 6.0]


def test_the_curves_record_holds_each_runs_numbers_at_each_checkpoint(tmp_path):
    from scripts import study_curves
    run = tmp_path / "study/save/model/resnet8_s0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,train_top1,test_top1\n1,10.0,9.0\n2,20.123,19.5\n")
    (run / "transfer_folder-target_adabn.jsonl").write_text(
        json.dumps({"epoch": 2, "best_acc": 0.6125, "final_acc": 0.6}) + "\n")
    (run / "geometry_folder-target.jsonl").write_text(json.dumps({"epoch": 2, "information": [
        {"noise": 0.25, "i_xt": 9.0, "i_ty": 9.0}, {"noise": 0.5, "i_xt": 1.23456, "i_ty": 0.5}]}) + "\n")
    study_curves.main(str(tmp_path / "study"), str(tmp_path / "curves.tsv"))
    lines = (tmp_path / "curves.tsv").read_text().splitlines()
    assert lines[1].split("\t") == study_curves.HEADER
    assert lines[2:] == ["\t".join(["resnet8_s0", "2", "20.12", "19.5", "61.25", "60.0", "1.2346", "0.5"])]
