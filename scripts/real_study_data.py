"""CIFAR-10 split by class into the real-photograph study's two tasks, as image folders.

    python scripts/real_study_data.py study/data --train_per_class 500 --test_per_class 200
    python scripts/real_study_data.py study/data --train_per_class all --test_per_class all --archive PATH

Writes OUT/source/{train,test}/<class>/<image> (airplane automobile bird cat deer) and
OUT/target/{train,test}/<class>/<image> (dog frog horse ship truck), the layout of
`--dataset folder:OUT/source`. Each class keeps its N lowest-numbered training images and
M lowest-numbered test images, so the same sizes always give the same images; training
images come only from CIFAR-10's training split and test images only from its test split.

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

TASKS = {"source": CLASSES[:5], "target": CLASSES[5:]}  # disjoint halves of CIFAR-10's classes
FULL = {"train": 5000, "test": 1000}  # CIFAR-10 images per class and split
STAMP = "prepared.json"
HOW_TO_GET = ("put the CIFAR-10 JPEG archive at {archive} (described in ../shared/data/README.md) or pass "
              "--archive PATH (STUDY_ARCHIVE=PATH), or run on a machine that can download "
              "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")


def per_class(text):
    """argparse type: a positive image count, or 'all'."""
    if text == "all":
        return text
    return util.positive()(text)


def counts(train_per_class, test_per_class):
    """{'train': N, 'test': M} with 'all' spelled as CIFAR-10's full count."""
    found = {}
    for split, n in {"train": train_per_class, "test": test_per_class}.items():
        try:
            n = per_class(str(n))
        except argparse.ArgumentTypeError as err:
            raise util.UserError(f"{split} images per class: {err} (a positive count or 'all')") from None
        found[split] = FULL[split] if n == "all" else min(n, FULL[split])
    return found


def prepare(out, train_per_class, test_per_class, archive=None, download_root=None):
    """Build OUT unless it already holds the same thing; returns the recorded description."""
    out = Path(out)
    wanted = {"tasks": {task: list(classes) for task, classes in TASKS.items()},
              "per_class": counts(train_per_class, test_per_class)}
    if out.exists():
        return check_prepared(out, wanted)
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted preparation left
    origin = write_tasks(partial, wanted["per_class"], archive, download_root or out.parent.resolve() / "download")
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
        raise util.UserError(f"{out} holds {describe(recorded['per_class'])}, not {describe(wanted['per_class'])}; "
                             f"use another study folder or remove {out} (and the runs trained on it)")
    return recorded


def describe(per_class):
    return f"{per_class['train']} train and {per_class['test']} test images per class"


def write_tasks(destination, per_class, archive, download_root):
    """Write both tasks into `destination`; returns where the images came from."""
    archive = find_archive(archive)
    if archive is not None:
        everything = extract(archive, destination / "all", CLASSES, per_class["train"], per_class["test"])  # one pass
        for task, classes in TASKS.items():
            for split in ("train", "test"):
                (destination / task / split).mkdir(parents=True)
                for name in classes:
                    os.replace(everything / split / name, destination / task / split / name)
        shutil.rmtree(everything)
        return f"archive {archive}"
    for split in ("train", "test"):
        images, labels = download(download_root, split)
        for task, classes in TASKS.items():
            for name in classes:
                folder = destination / task / split / name
                folder.mkdir(parents=True, exist_ok=True)
                chosen = np.flatnonzero(labels == CLASSES.index(name))[:per_class[split]]
                for number, index in enumerate(chosen):
                    Image.fromarray(images[index]).save(folder / f"{number:04d}.png")
    return f"CIFAR-10 download in {download_root}"


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
    return parser.parse_args(argv)


def main(argv=None):
    def run():
        args = parse_args(argv)
        done = prepare(args.out, args.train_per_class, args.test_per_class, args.archive)
        print(f"data: {args.out}/{{source,target}}, {describe(done['per_class'])}, from {done['origin']}")
    return util.run_main(run)


if __name__ == "__main__":
    main()
