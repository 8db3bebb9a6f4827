"""Turn a slice of the offline CIFAR-10 JPEG archive into an image folder (`--dataset folder:<path>`).

The archive (`cifar10-jpg.tar.gz`, layout `train/<class>/NNNN.jpg`, `test/<class>/NNNN.jpg`)
holds real photographs; tests, benchmarks and the demo take a few classes and a few
hundred images per class from it. JPEG re-encoding changes pixel values slightly, so
accuracies on it are not CIFAR-10 numbers.

    python scripts/cifar10_jpg.py ../shared/data/cifar10-jpg.tar.gz /tmp/animals \
        --classes cat dog --train_per_class 500 --test_per_class 100
"""
import argparse
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def extract(archive, destination, classes=CLASSES, train_per_class=500, test_per_class=100):
    """Write destination/{train,test}/<class>/*.jpg: the N lowest-numbered images of each class.

    Returns the destination. The archive does not list files in number order, so one
    pass keeps the wanted classes' images in memory (20 MB for all of CIFAR-10) and the
    lowest numbers are written afterwards: the same subset whatever the archive's order.
    """
    destination = Path(destination)
    wanted = {"train": train_per_class, "test": test_per_class}
    found = {(split, label): {} for split in wanted for label in classes}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if member.isfile() and len(parts) >= 3 and tuple(parts[-3:-1]) in found:
                found[tuple(parts[-3:-1])][parts[-1]] = tar.extractfile(member).read()
    missing = [f"{split}/{label}" for (split, label), images in found.items() if not images]
    if missing:
        raise ValueError(f"{archive} holds no images for {', '.join(missing)}")
    for (split, label), images in found.items():
        folder = destination / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for name in sorted(images)[:wanted[split]]:
            (folder / name).write_bytes(images[name])
    return destination


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", nargs="?", default=str(ARCHIVE))
    parser.add_argument("destination")
    parser.add_argument("--classes", nargs="+", default=list(CLASSES), choices=CLASSES)
    parser.add_argument("--train_per_class", type=int, default=500)
    parser.add_argument("--test_per_class", type=int, default=100)
    args = parser.parse_args(argv)
    if not Path(args.archive).is_file():
        sys.exit(f"error: {args.archive} not found")
    print(extract(args.archive, args.destination, args.classes, args.train_per_class, args.test_per_class))


if __name__ == "__main__":
    main()
