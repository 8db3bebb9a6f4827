"""Per run and checkpoint: training and source test accuracy, the adabn probe's numbers, and geometry's I(X;T_s), I(T_s;Y) at s = 0.5 on the target test images.

    python scripts/study_curves.py study/cpu docs/study_records/cpu/curves.tsv

Reads every run folder under STUDY/save/model/ (metrics.csv, the adabn probe's rows, geometry's
rows on the target) and writes one tab-separated row per run and checkpoint: the per-seed numbers
behind the study report's means, kept in docs/study_records/ beside the reports.
"""
import csv
import glob
import json
import sys

HEADER = ["run", "epoch", "train_top1", "source_test_top1", "adabn_best", "adabn_last", "target_i_xt_s0.5",
          "target_i_ty_s0.5"]


def rows(study):
    for folder in sorted(glob.glob(f"{study}/save/model/*")):
        metrics = {int(r["epoch"]): r for r in csv.DictReader(open(f"{folder}/metrics.csv"))}
        probe = {r["epoch"]: r for r in map(json.loads, open(glob.glob(f"{folder}/transfer_*adabn.jsonl")[0]))}
        geometry = {r["epoch"]: r for r in map(json.loads, open(f"{folder}/geometry_folder-target.jsonl"))}
        for epoch in sorted(probe):
            level = next(level for level in geometry[epoch]["information"] if level["noise"] == 0.5)
            yield [folder.split("/")[-1], epoch, round(float(metrics[epoch]["train_top1"]), 2),
                   round(float(metrics[epoch]["test_top1"]), 2), round(100 * probe[epoch]["best_acc"], 2),
                   round(100 * probe[epoch]["final_acc"], 2), round(level["i_xt"], 4), round(level["i_ty"], 4)]


def main(study, out):
    lines = ["# " + __doc__.split("\n")[0], "\t".join(HEADER)] + ["\t".join(map(str, row)) for row in rows(study)]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 2} rows to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
