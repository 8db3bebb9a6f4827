"""Write the offline demo's data: synthetic images in the real CIFAR-100 pickle format and the
real CINIC-10 folder format, so the demo runs the same loading code as real data.

    python scripts/make_demo_data.py --data_root demo/data

The images are coloured stripes plus noise, one pattern per class: numbers measured on
them show that the pipeline runs, not what the paper found.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.synthetic import CINIC10_CLASSES, write_cifar100, write_image_folder  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_root", default="demo/data")
    parser.add_argument("--cifar_train", type=int, default=2000, help="CIFAR-100 training images")
    parser.add_argument("--cifar_test", type=int, default=500)
    parser.add_argument("--cinic_per_class", type=int, default=50, help="CINIC-10 images per class and split")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    if not (root / "cifar-100-python").is_dir():
        write_cifar100(root, args.cifar_train, args.cifar_test, seed=0)
    if not (root / "CINIC-10").is_dir():
        write_image_folder(root / "CINIC-10", CINIC10_CLASSES, args.cinic_per_class, seed=1)
    print(f"demo data in {root}/cifar-100-python and {root}/CINIC-10")


if __name__ == "__main__":
    main()
