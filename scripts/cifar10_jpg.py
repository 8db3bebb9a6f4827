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
    """Write destination/{train,test}/<class>/*.jpg: the first N images of each class, in file order.

    Returns the destination. One pass over the archive: members are read as they stream by.
    """
    destination = Path(destination)
    wanted = {"train": train_per_class, "test": test_per_class}
    taken = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3:
                continue
            split, label, name = parts[-3:]
            key = (split, label)
            if label not in classes or split not in wanted or taken.get(key, 0) >= wanted[split]:
                continue
            target = destination / split / label / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            taken[key] = taken.get(key, 0) + 1
    missing = [f"{split}/{label}" for split in wanted for label in classes if taken.get((split, label), 0) == 0]
    if missing:
        raise ValueError(f"{archive} holds no images for {', '.join(missing)}")
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
