"""GPU-only end-to-end check of CUDA-graph training: train_vanilla.py and train_ctc.py run the
same short schedule eagerly and with --cuda_graph (tail batches, the CTC stage switch and the
memory refresh included) on the same synthetic data and seed; prints both runs' metrics.

    python bench/graph_check.py --model resnext32_16x4d
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import train_ctc  # noqa: E402
import train_vanilla  # noqa: E402
import util  # noqa: E402
from dataset.synthetic import write_cifar100  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnext32_16x4d")
    parser.add_argument("--n_train", type=int, default=5000, help="not a multiple of 64: every epoch ends in a tail batch")
    args = parser.parse_args()
    common = ["--model", args.model, "--batch_size", "64", "--num_workers", "4", "--print_freq", "100000",
              "--save_freq", "1"]
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        write_cifar100("data", args.n_train + 17, 1000)
        # The table goes to stderr, apart from the training logs on stdout.
        print("| script | variant | epoch | lr | train loss | train top-1 | test top-1 | s/epoch |\n"
              "|---|---|---|---|---|---|---|---|", file=sys.stderr, flush=True)
        for variant, flags in (("eager", []), ("cuda_graph", ["--cuda_graph"])):
            train_vanilla.main(common + ["--epochs", "3", "--note", variant] + flags)
            train_ctc.main(common + ["--epochs", "3", "--stage_two_epoch", "2", "--update_memory_bank",
                                     "--note", variant] + flags)
            for script, pattern in (("vanilla", f"*_lr_*_{variant}"), ("ctc", f"*_a:*_{variant}")):
                for row in util.read_csv(next(Path("save/model").glob(pattern)) / "metrics.csv"):
                    print(f"| {script} | {variant} | {row['epoch']} | {float(row['lr']):.4f} | "
                          f"{float(row['train_loss']):.4f} | {float(row['train_top1']):.2f} | "
                          f"{float(row['test_top1']):.2f} | {float(row['seconds']):.1f} |", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
