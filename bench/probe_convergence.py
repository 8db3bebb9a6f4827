"""Does the linear probe converge? The same checkpoints probed for more and more epochs.

    cd study/cpu && python ../../bench/probe_convergence.py --ckpt_path RUN --model resnet8 \
        --source_dataset folder:data/source --target_dataset folder:data/target \
        --protocol adabn --batch 128 --epochs 10 30 100 --checkpoints 4 40 60 --results probe.jsonl

Runs transfer.py on the chosen checkpoints once per --epochs value (the cosine schedule spans
each run); the rows of each length go to a results file of their own (RESULTS with `_e<epochs>`
before its suffix), since one results file never mixes settings.
Prints, per checkpoint, the best test accuracy over the probe's epochs (the paper's number) and
the accuracy after its last epoch for each length: a probe that has converged gives the same
numbers at the longer lengths.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transfer  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--ckpt_path", required=True)
    add("--model", required=True)
    add("--source_dataset", required=True)
    add("--target_dataset", required=True)
    add("--protocol", default="adabn")
    add("--batch", default="128")
    add("--lr", default="0.4")
    add("--epochs", type=int, nargs="+", default=[10, 30, 100])
    add("--checkpoints", type=int, nargs="+", required=True, help="epochs of the checkpoints to probe")
    add("--results", required=True, help="prefix of the results files (one per probe length)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    found = {}
    for epochs in args.epochs:
        results = Path(args.results).with_name(f"{Path(args.results).stem}_e{epochs}.jsonl")
        for checkpoint in args.checkpoints:
            transfer.main(["--source_dataset", args.source_dataset, "--target_dataset", args.target_dataset,
                           "--model", args.model, "--ckpt_path", args.ckpt_path, "--start_epoch", str(checkpoint),
                           "--skip", "100000", "--epoch", str(epochs), "--batch", args.batch, "--lr", args.lr,
                           "--protocol", args.protocol, "--results", str(results)])
        for row in map(json.loads, results.read_text().splitlines()):
            found[row["epoch"], epochs] = (100 * row["best_acc"], 100 * row["final_acc"])
    print(f"\n{args.protocol} probe, batch {args.batch}, lr {args.lr}: best over the probe's epochs / after its last "
          f"epoch (%)")
    print("| checkpoint | " + " | ".join(f"{epochs} epochs" for epochs in args.epochs) + " |")
    print("|---:|" + "---|" * len(args.epochs))
    for checkpoint in args.checkpoints:
        cells = [f"{found[checkpoint, e][0]:.2f} / {found[checkpoint, e][1]:.2f}" if (checkpoint, e) in found else "-"
                 for e in args.epochs]
        print(f"| {checkpoint} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
