"""How far the fast transfer protocols (adabn, frozen) land from the paper's (train_bn), on real images.

    python bench/transfer_protocols.py            # a few CPU minutes
    python bench/transfer_protocols.py --amp      # also every protocol with transfer.py --amp

CIFAR-10 JPEG images (../shared/data/cifar10-jpg.tar.gz) are split into two disjoint
5-class tasks: source airplane automobile bird cat deer, target dog frog horse ship
truck. A small model is trained on the source half with train_vanilla.py, saving every
epoch, and transfer.py probes every checkpoint with each protocol. Prints a markdown
table of best test accuracy per checkpoint and protocol, and the gaps to train_bn.
With --amp every protocol also runs with bf16 autocast and channels_last for the
backbone (`<protocol>+amp` columns, gaps still to float32 train_bn).
Only the needed images are extracted, into a temporary folder.
"""
import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import util  # noqa: E402
from helper.results import read_results  # noqa: E402
from helper.run import model_folder, vanilla_run_name  # noqa: E402
from helper.transfer import PROTOCOLS, probe_name  # noqa: E402
from scripts.cifar10_jpg import ARCHIVE, extract  # noqa: E402

SOURCE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
TARGET_CLASSES = ("dog", "frog", "horse", "ship", "truck")


def parse_option():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--archive", default=str(ARCHIVE))
    add("--train_per_class", type=int, default=500)
    add("--test_per_class", type=int, default=200)
    add("--model", default="resnet8")
    add("--source_epochs", type=int, default=6)
    add("--probe_epochs", type=int, default=10, help="target epochs (the paper: 30)")
    add("--probe_batch", type=int, default=128, help="probe batch size (the paper: 512 on 90k images)")
    add("--device", default="cpu")
    add("--amp", action="store_true", help="also probe with transfer.py --amp (bf16 autocast, channels_last)")
    add("--workdir", default=None, help="keep the extracted images and runs here (default: a temporary folder)")
    return parser.parse_args()


def run(command, cwd):
    started = time.time()
    done = subprocess.run([sys.executable, *command], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:1])} failed:\n{done.stderr[-3000:]}")
    return time.time() - started


def main():
    args = parse_option()
    if not Path(args.archive).is_file():
        sys.exit(f"{args.archive} not found: this benchmark needs the CIFAR-10 JPEG archive described in "
                 f"../shared/data/README.md")
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(args.workdir or scratch).resolve()
        for task, classes in (("source", SOURCE_CLASSES), ("target", TARGET_CLASSES)):
            extract(args.archive, workdir / task, classes, args.train_per_class, args.test_per_class)
        source, target = f"folder:{workdir / 'source'}", f"folder:{workdir / 'target'}"
        train_seconds = run([str(ROOT / "train_vanilla.py"), "--dataset", source, "--model", args.model,
                             "--epochs", str(args.source_epochs), "--save_freq", "1", "--num_workers", "0",
                             "--note", "protocols", "--device", args.device, "--print_freq", "1000"], workdir)
        run_name = vanilla_run_name(args.model, source, 0.05, "0", "protocols")
        run_folder = workdir / model_folder(run_name)
        for protocol, amp in variants(args):
            run([str(ROOT / "transfer.py"), "--source_dataset", source, "--target_dataset", target,
                                     "--model", args.model, "--ckpt_path", str(run_folder), "--start_epoch", "1",
                                     "--skip", "1", "--epoch", str(args.probe_epochs), "--batch", str(args.probe_batch),
                                     "--protocol", protocol, "--device", args.device,
                                     *(["--amp"] if amp else [])], workdir)
        report(args, run_folder, train_seconds)


def variants(args):
    """(protocol, amp) pairs to probe: every protocol in float32, then the --amp ones."""
    return [(protocol, amp) for amp in ([False, True] if args.amp else [False]) for protocol in PROTOCOLS]


def label(protocol, amp):
    return f"{protocol}+amp" if amp else protocol


def results_path(run_folder, protocol, amp):
    """transfer.py's default results file of the target folder 'target'."""
    return run_folder / f"transfer_{probe_name('folder-target', protocol, amp)}.jsonl"


def report(args, run_folder, train_seconds):
    rows = {label(protocol, amp): {row["epoch"]: row
                                   for row in read_results(results_path(run_folder, protocol, amp))}
            for protocol, amp in variants(args)}
    others = [name for name in rows if name != "train_bn"]
    source_acc = {int(row["epoch"]): float(row["test_top1"]) for row in util.read_csv(run_folder / "metrics.csv")}
    print(f"{args.model}, source {args.train_per_class}/{args.test_per_class} images per class x 5 classes, "
          f"{args.source_epochs} source epochs ({train_seconds:.0f} s); probe {args.probe_epochs} epochs, "
          f"batch {args.probe_batch}, lr 0.4, wd 5e-4; device {args.device}\n")
    print("| source epoch | source test acc | train_bn | " + " | ".join(f"{name} (gap)" for name in others) + " |")
    print("|---|---|---|" + "---|" * len(others))
    gaps = {name: [] for name in others}
    for epoch in sorted(rows["train_bn"]):
        reference = rows["train_bn"][epoch]["best_acc"]
        cells = [f"{epoch}", f"{source_acc.get(epoch, float('nan')):.1f}%", f"{100 * reference:.1f}%"]
        for name in others:
            best = rows[name][epoch]["best_acc"]
            gaps[name].append(100 * (best - reference))
            cells.append(f"{100 * best:.1f}% ({gaps[name][-1]:+.1f})")
        print("| " + " | ".join(cells) + " |")
    seconds = {name: sum(row["seconds"] for row in by_epoch.values()) / len(by_epoch)
               for name, by_epoch in rows.items()}
    epochs = sorted(rows["train_bn"])
    reference_curve = [rows["train_bn"][epoch]["best_acc"] for epoch in epochs]
    print("\n| protocol | mean gap to train_bn (points) | largest gap | rank correlation with train_bn over "
          "checkpoints | seconds per checkpoint |")
    print("|---|---|---|---|---|")
    print(f"| train_bn | 0 | 0 | 1 | {seconds['train_bn']:.1f} |")
    for name, values in gaps.items():
        rho = spearmanr(reference_curve, [rows[name][epoch]["best_acc"] for epoch in epochs]).statistic
        print(f"| {name} | {sum(values) / len(values):+.2f} | {max(values, key=abs):+.1f} | {rho:.2f} "
              f"| {seconds[name]:.1f} |")
    amp_runs = [protocol for protocol in PROTOCOLS if label(protocol, True) in rows]
    if amp_runs:
        print("\n| protocol | amp minus float32, mean over checkpoints (points) | largest | checkpoints with the "
              "same best accuracy |")
        print("|---|---|---|---|")
        for protocol in amp_runs:
            changes = [100 * (rows[label(protocol, True)][epoch]["best_acc"] - rows[protocol][epoch]["best_acc"])
                       for epoch in epochs]
            same = sum(abs(change) < 1e-9 for change in changes)
            print(f"| {protocol} | {sum(changes) / len(changes):+.2f} | {max(changes, key=abs):+.1f} "
                  f"| {same} of {len(changes)} |")
    tested = 5 * args.test_per_class
    p = sum(reference_curve) / len(reference_curve)
    print(f"\nOne accuracy on {tested} test images has a binomial standard error of "
          f"{100 * math.sqrt(p * (1 - p) / tested):.1f} points at {100 * p:.0f}%.")


if __name__ == "__main__":
    main()
