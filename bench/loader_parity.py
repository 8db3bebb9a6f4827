"""Does the fast path learn what the plain path learns? Short train_vanilla.py runs on real
photographs (a slice of the offline CIFAR-10 JPEG archive) with the DataLoader + PIL path
and with the device-resident loader, same seeds; prints final test accuracy per run and
the mean of each path, with the spread across seeds as the run-to-run noise.

    python bench/loader_parity.py --epochs 5 --seeds 0 1 2
"""
import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import train_vanilla  # noqa: E402
from scripts.cifar10_jpg import ARCHIVE, CLASSES, extract  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=str(ARCHIVE))
    parser.add_argument("--model", default="resnet8")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train_per_class", type=int, default=500)
    parser.add_argument("--test_per_class", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        data = extract(args.archive, Path(workdir) / "cifar10", CLASSES, args.train_per_class, args.test_per_class)
        os.chdir(workdir)
        results = {"torch": [], "gpu": []}
        print(f"# {args.model}, {args.epochs} epochs, 10 classes x {args.train_per_class} train / "
              f"{args.test_per_class} test real images, device {args.device}")
        print("| loader | seed | test top-1 | s/epoch |\n|---|---|---|---|")
        for seed in args.seeds:
            for loader in results:
                note = f"{loader}_{seed}"
                started = time.time()
                train_vanilla.main(["--dataset", f"folder:{data}", "--model", args.model, "--epochs", str(args.epochs),
                                    "--batch_size", "64", "--learning_rate", "0.05", "--num_workers", "2",
                                    "--loader", loader, "--seed", str(seed), "--device", args.device,
                                    "--print_freq", "100000", "--save_freq", "100000", "--note", note])
                rows = list(csv.DictReader(open(next(Path("save/model").glob(f"*_{note}")) / "metrics.csv")))
                accuracy = float(rows[-1]["test_top1"])
                results[loader].append(accuracy)
                print(f"| {loader} | {seed} | {accuracy:.2f} | {(time.time() - started) / args.epochs:.1f} |",
                      file=sys.stderr, flush=True)
        for loader, values in results.items():
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            print(f"{loader}: mean top-1 {statistics.mean(values):.2f} +- {spread:.2f} over seeds {args.seeds}",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
