"""CIFAR-10 made into the real-photograph study's two tasks, a source and a target, as image folders.

    python scripts/real_study_data.py study/data --train_per_class 500 --test_per_class 200
    python scripts/real_study_data.py study/data --train_per_class all --test_per_class all --archive PATH
    python scripts/real_study_data.py study/data --tasks coarse --train_per_class 250 --test_per_class 250

Writes OUT/source/{train,test}/<label>/<image> and OUT/target/{train,test}/<label>/<image>,
the layout of `--dataset folder:OUT/source`. `--tasks` chooses how (LAYOUTS):

- halves (default): the source task is airplane automobile bird cat deer, the target task
  dog frog horse ship truck: disjoint classes.
- coarse: the source task labels all ten classes coarsely, vehicle (airplane automobile ship
  truck) or animal (the other six); the target task is the ten fine classes, on other images.
- pairs: the source task labels pairs of similar classes (airplane+ship, automobile+truck,
  bird+frog, cat+dog, deer+horse); the target task is the ten fine classes, on other images.
- scrambled: the halves, and the source task's training split also holds N more training images
  of each target class, each under a source label drawn at random (a constructed positive control:
  fitting them destroys what the target task needs).

Counts are per CIFAR-10 class and task: each class gives its N lowest-numbered training and M
lowest-numbered test images to the source task and, where both tasks use the class, its next
N and M to the target task; so the same sizes always give the same images, no image is in
both tasks, and training images come only from CIFAR-10's training split and test images
only from its test split. A coarse label's folder holds its classes' images named
<class>_<number>.

Where the images come from: the CIFAR-10 JPEG archive (`--archive`, else the environment
variable STUDY_ARCHIVE, else ../shared/data/cifar10-jpg.tar.gz when it exists); otherwise the
official CIFAR-10 is downloaded into OUT/../download (needs internet) and written as PNG.
OUT is built under a temporary name and renamed when complete, with a `prepared.json`
recording what it holds: a rerun with the same sizes does nothing, other sizes are refused.
"""
import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import util  # noqa: E402
from dataset import load_arrays  # noqa: E402
from scripts.cifar10_jpg import ARCHIVE, CLASSES, extract  # noqa: E402

FULL = {"train": 5000, "test": 1000}  # CIFAR-10 images per class and split


def fine(classes):
    return {name: (name,) for name in classes}


# Per layout and task: {label (folder name): the CIFAR-10 classes it holds}.
LAYOUTS = {
    "halves": {"source": fine(CLASSES[:5]), "target": fine(CLASSES[5:])},
    # The target needs distinctions the source task is trained to ignore.
    "coarse": {"source": {"vehicle": ("airplane", "automobile", "ship", "truck"),
                          "animal": ("bird", "cat", "deer", "dog", "frog", "horse")},
               "target": fine(CLASSES)},
    "pairs": {"source": {"airplane+ship": ("airplane", "ship"), "automobile+truck": ("automobile", "truck"),
                         "bird+frog": ("bird", "frog"), "cat+dog": ("cat", "dog"), "deer+horse": ("deer", "horse")},
              "target": fine(CLASSES)},
}
# The positive control's construction (docs/real_study.md): the source training split also holds the
# next N training images of each of these classes, each under a source label drawn at random (fixed
# by SCRAMBLE_SEED). Fitting them makes the network give dogs, frogs, ... the features of arbitrary
# source classes: the source task is trained to discard exactly what the target task needs.
LAYOUTS["scrambled"] = LAYOUTS["halves"]
SCRAMBLED = {"scrambled": CLASSES[5:]}
SCRAMBLE_SEED = 0
TASKS = LAYOUTS["halves"]  # the default layout


def title(tasks):
    """The study's heading for a layout: its source labels -> its target labels."""
    source, target = ("/".join(LAYOUTS[tasks][task]) for task in ("source", "target"))
    scrambled = (f" (the source also fits {'/'.join(SCRAMBLED[tasks])} training images under random source labels)"
                 if tasks in SCRAMBLED else "")
    return f"Real-photograph study ({tasks}): CIFAR-10 {source} -> {target}{scrambled}"


def shares_classes(tasks):
    """Whether both tasks draw on some CIFAR-10 class (then they split its images)."""
    return bool(classes_of(LAYOUTS[tasks]["source"]) & classes_of(LAYOUTS[tasks]["target"]))


def classes_of(task):
    return {name for members in task.values() for name in members}
STAMP = "prepared.json"
HOW_TO_GET = ("put the CIFAR-10 JPEG archive at {archive} (described in ../shared/data/README.md) or pass "
              "--archive PATH (STUDY_ARCHIVE=PATH), or run on a machine that can download "
              "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")


def per_class(text):
    """argparse type: a positive image count, or 'all'."""
    if text == "all":
        return text
    return util.positive()(text)


def counts(train_per_class, test_per_class, tasks="halves"):
    """{'train': N, 'test': M} per class and task, with 'all' spelled as CIFAR-10's full count (half of
    it where both tasks split a class's images)."""
    if tasks not in LAYOUTS:
        raise util.UserError(f"unknown task layout '{tasks}' (known: {', '.join(LAYOUTS)})")
    found = {}
    for split, n in {"train": train_per_class, "test": test_per_class}.items():
        try:
            n = per_class(str(n))
        except argparse.ArgumentTypeError as err:
            raise util.UserError(f"{split} images per class: {err} (a positive count or 'all')") from None
        share = shares(tasks, split)
        found[split] = FULL[split] // share if n == "all" else min(n, FULL[split] // share)
    return found


def shares(tasks, split):
    """Into how many parts a CIFAR-10 class's images of `split` are cut (each part a task's, or the
    scrambled images')."""
    return 2 if shares_classes(tasks) or (tasks in SCRAMBLED and split == "train") else 1


def task_images(tasks, per_class):
    """{(task, split): number of images} of a layout at these counts per class."""
    found = {(task, split): len(classes_of(LAYOUTS[tasks][task])) * n
             for task in LAYOUTS[tasks] for split, n in per_class.items()}
    found["source", "train"] += len(SCRAMBLED.get(tasks, ())) * per_class["train"]
    return found


def prepare(out, train_per_class, test_per_class, archive=None, download_root=None, tasks="halves"):
    """Build OUT unless it already holds the same thing; returns the recorded description."""
    out = Path(out)
    wanted = {"tasks": {task: {label: list(members) for label, members in labels.items()}
                        for task, labels in LAYOUTS[tasks].items()} if tasks != "halves"
              else {task: list(labels) for task, labels in TASKS.items()},  # as recorded before layouts existed
              "per_class": counts(train_per_class, test_per_class, tasks)}
    if tasks in SCRAMBLED:
        wanted["scrambled"] = {"classes": list(SCRAMBLED[tasks]), "seed": SCRAMBLE_SEED}
    if out.exists():
        return check_prepared(out, wanted)
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted preparation left
    origin = write_tasks(partial, tasks, wanted["per_class"], archive,
                         download_root or out.parent.resolve() / "download")
    util.write_json(partial / STAMP, {**wanted, "origin": origin})
    os.replace(partial, out)
    return {**wanted, "origin": origin}


def check_prepared(out, wanted):
    stamp = out / STAMP
    if not stamp.is_file():
        raise util.UserError(f"{out} exists but was not written by this script (no {STAMP}); "
                             f"remove it or choose another folder")
    recorded = json.loads(stamp.read_text())
    if {key: recorded.get(key) for key in wanted} != wanted:
        held, asked = describe(recorded["per_class"]), describe(wanted["per_class"])
        if recorded.get("tasks") != wanted["tasks"]:
            held, asked = f"other tasks ({held})", f"these tasks ({asked})"
        raise util.UserError(f"{out} holds {held}, not {asked}; "
                             f"use another study folder or remove {out} (and the runs trained on it)")
    return recorded


def describe(per_class):
    return f"{per_class['train']} train and {per_class['test']} test images per class"


def write_tasks(destination, tasks, per_class, archive, download_root):
    """Write both tasks of layout `tasks` into `destination`; returns where the images came from."""
    layout = LAYOUTS[tasks]
    wanted = {split: shares(tasks, split) * n for split, n in per_class.items()}  # of each class, all parts
    archive = find_archive(archive)
    if archive is not None:
        everything = extract(archive, destination / "all", CLASSES, wanted["train"], wanted["test"])  # one pass
        by_class = {(split, name): sorted((everything / split / name).iterdir()) for split in wanted for name in CLASSES}
        origin = f"archive {archive}"
    else:
        by_class, origin = {}, f"CIFAR-10 download in {download_root}"
        for split in wanted:
            images, labels = download(download_root, split)
            for name in CLASSES:
                by_class[split, name] = [(f"{number:04d}.png", images[index]) for number, index in
                                         enumerate(np.flatnonzero(labels == CLASSES.index(name))[:wanted[split]])]
    for (split, name), images in by_class.items():
        n = per_class[split]
        takers = [task for task in layout if name in classes_of(layout[task])]
        for slot, task in enumerate(takers):  # the source task first: its images are the lowest-numbered
            label = next(label for label, members in layout[task].items() if name in members)
            folder = destination / task / split / label
            folder.mkdir(parents=True, exist_ok=True)
            prefix = "" if layout[task][label] == (name,) else f"{name}_"
            for image in images[slot * n:(slot + 1) * n]:
                write_image(image, folder, prefix)
    scramble(destination, tasks, by_class, per_class["train"])
    if archive is not None:
        shutil.rmtree(everything)
    return origin


def scramble(destination, tasks, by_class, n):
    """The scrambled images of a layout: each class's training images n..2n-1 into the source task's
    training split under a source label drawn at random, in class and number order."""
    labels = sorted(LAYOUTS[tasks]["source"])
    generator = np.random.default_rng(SCRAMBLE_SEED)
    for name in SCRAMBLED.get(tasks, ()):
        for image in by_class["train", name][n:2 * n]:
            folder = destination / "source" / "train" / labels[generator.integers(len(labels))]
            write_image(image, folder, f"{name}_")


def write_image(image, folder, prefix):
    """A file extracted from the archive is moved; a downloaded array is written as PNG."""
    if isinstance(image, Path):
        os.replace(image, folder / f"{prefix}{image.name}")
    else:
        name, pixels = image
        Image.fromarray(pixels).save(folder / f"{prefix}{name}")


def find_archive(archive):
    """The archive to read, or None to download CIFAR-10; a named archive must exist."""
    named = archive or os.environ.get("STUDY_ARCHIVE")
    if named:
        if not Path(named).is_file():
            raise util.UserError(f"CIFAR-10 archive {named} not found: " + HOW_TO_GET.format(archive=ARCHIVE))
        return Path(named)
    return ARCHIVE if ARCHIVE.is_file() else None


def download(root, split):
    try:
        return load_arrays("cifar10", root, split)
    except util.UserError as err:
        raise util.UserError(f"no CIFAR-10 images: no archive at {ARCHIVE}, and {err}. To get them, "
                             + HOW_TO_GET.format(archive=ARCHIVE)) from None


def parse_args(argv):
    parser = util.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write (its source/ and target/ are the two tasks)")
    parser.add_argument("--train_per_class", type=per_class, default=500, help="training images per class, or all")
    parser.add_argument("--test_per_class", type=per_class, default=200, help="test images per class, or all")
    parser.add_argument("--archive", help="CIFAR-10 JPEG archive (default: STUDY_ARCHIVE, then " + str(ARCHIVE) + ")")
    parser.add_argument("--tasks", default="halves", choices=LAYOUTS, help="how CIFAR-10 becomes the two tasks")
    return parser.parse_args(argv)


def main(argv=None):
    def run():
        args = parse_args(argv)
        done = prepare(args.out, args.train_per_class, args.test_per_class, args.archive, tasks=args.tasks)
        print(f"data: {args.out}/{{source,target}}, {describe(done['per_class'])}, from {done['origin']}")
    return util.run_main(run)


if __name__ == "__main__":
    main()
