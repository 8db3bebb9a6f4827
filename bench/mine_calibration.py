"""MINE calibration grid for both protocols: problems of known MI through `mine.py --calibrate`,
then a table read from the results rows (bench/BENCHMARKS.md, "MINE: the held-out protocol").

    python bench/mine_calibration.py --results cal.jsonl               # the CPU-sized grid, ~50 min
    python bench/mine_calibration.py --results cal.jsonl --table       # only the table of what is there
    python bench/mine_calibration.py --results gpu.jsonl --hidden_size 1024 --batch_size 5000 \
        --lr 8e-5 --iter_num 1e+4 --device cuda                         # the reference's critic size

Problems (10,000 rows each, as CIFAR-100's test split): correlated Gaussians of 0.5, 1, 2
and 4 nats in 10, 100 and 1,000 dimensions; the same in 10 dimensions with Y cubed (MI
unchanged); T determining a one-hot Y of 2, 4 and 10 balanced classes (MI = log classes).
Each (problem, dimension, protocol) is one `mine.py --calibrate` call, skipped when its
rows are already in the results file, so an interrupted grid resumes.
"""
import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helper.mine.report import PROTOCOLS  # noqa: E402
from helper.results import read_results  # noqa: E402

GAUSSIAN_MI = ("0.5", "1", "2", "4")
# (problem, dim, the flags naming its instances)
GRID = [("gaussian", 10, ["--true_mi", *GAUSSIAN_MI]), ("gaussian", 100, ["--true_mi", *GAUSSIAN_MI]),
        ("gaussian", 1000, ["--true_mi", *GAUSSIAN_MI]), ("cubic", 10, ["--true_mi", *GAUSSIAN_MI]),
        ("classes", 16, ["--classes", "2", "4", "10"])]


def parse_option():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--results", required=True, help="JSON-lines file the calibration rows accumulate in")
    add("--table", action="store_true", help="print the table of the rows already there, run nothing")
    add("--hidden_size", default="256")
    add("--batch_size", default="500")
    add("--lr", default="3e-4")
    add("--iter_num", default="4000", help="iterations (the held-out protocol: the most it trains)")
    add("--device", default="cpu")
    add("--seed", default="0")
    add("--dims", type=int, nargs="+", default=None, help="only these dimensions of the grid")
    return parser.parse_args()


def settings(args):
    return ["--hidden_size", args.hidden_size, "--batch_size", args.batch_size, "--lr", args.lr,
            "--iter_num", args.iter_num, "--device", args.device, "--seed", args.seed, "--calibrate_rows", "10000"]


# A line of the table: rows made with other critic settings never share one.
SETTINGS = ("problem", "dim", "protocol", "hidden_size", "batch_size", "lr", "iter_num", "seed")


def setting_key(row):
    return tuple(row[key] for key in SETTINGS)


def done(rows, problem, dim, protocol, args):
    wanted = (problem, dim, protocol, int(args.hidden_size), int(args.batch_size), float(args.lr),
              int(float(args.iter_num)), int(args.seed))
    return any(setting_key(row) == wanted for row in rows)


def run_grid(args):
    for problem, dim, instances in GRID:
        if args.dims and dim not in args.dims:
            continue
        for protocol in PROTOCOLS:
            if done(read_results(args.results) if Path(args.results).exists() else [], problem, dim, protocol, args):
                continue
            command = [sys.executable, str(ROOT / "mine.py"), "--calibrate", problem, "--dim", str(dim), *instances,
                       "--protocol", protocol, *settings(args), "--results", args.results]
            print("$", " ".join(command[1:]), flush=True)
            subprocess.run(command, check=True)


def stderr(row):
    return "-" if row["stderr"] is None else f"{row['stderr']:.3f}"


def table(rows):
    """Markdown: per problem, dimension and protocol, the estimates against the truth."""
    lines = ["| problem | dim | protocol | truth | estimate +- stderr (error) | at iteration / trained | "
             "in true order | never above truth + 2 SE | s per problem |", "|---|---|---|---|---|---|---|---|---|"]
    groups = {}
    for row in rows:
        groups.setdefault(setting_key(row), []).append(row)
    for (problem, dim, protocol, *_), members in groups.items():
        members = sorted(members, key=lambda row: row["true_mi"])
        estimates = [row["estimate"] for row in members]
        in_order = all(later > earlier for earlier, later in zip(estimates, estimates[1:]))
        honest = not any(row["above_truth"] for row in members)  # as mine.py --calibrate judged each row
        lines.append(" | ".join([
            f"| {problem}", str(dim), protocol, " / ".join(f"{row['true_mi']:.3g}" for row in members),
            " / ".join(f"{row['estimate']:.3f} +- {stderr(row)} ({row['error']:+.0%})" for row in members),
            " / ".join(f"{row['iteration']}/{row['iterations']}" for row in members),
            "yes" if in_order else "no", "yes" if honest else "no",
            f"{sum(row['seconds'] for row in members) / len(members):.0f} |"]))
    return "\n".join(lines)


def main():
    args = parse_option()
    if not args.table:
        run_grid(args)
    rows = read_results(args.results)
    print(table(rows))
    for dim in (10, 100):
        errors = [abs(row["error"]) for row in rows
                  if row["protocol"] == "heldout" and row["problem"] == "gaussian" and row["dim"] == dim]
        if errors:
            print(f"held-out protocol, Gaussians in {dim} dimensions: largest |error| {max(errors):.0%}")


if __name__ == "__main__":
    main()
