"""What the study's drop statistics can see: false positives on flat curves, power at true drops.

    python bench/study_power.py --seeds 4 --checkpoints 15 --noise 0.5 --results power.jsonl
    python bench/study_power.py --seeds 4 --checkpoints 15 --noise 0.5 --drops 0 1 2 --peak 0.2

Simulates studies of `--seeds` seeds, each a transfer curve over `--checkpoints` equally spaced
checkpoints: the true curve rises by `--rise` points to its peak at fraction `--peak` of the run,
then falls linearly by the true drop (points) to the last checkpoint; every seed adds its own
offset (which paired statistics cancel), its own deviation of the drop (`--drop_sd`) and
independent noise of `--noise` points at every checkpoint. Each statistic of
scripts/study_statistics.py is computed as the study computes it, and a study "declares a fall"
when the statistic's 95% interval over seeds lies above zero. Prints, per statistic and true
drop, the share of simulated studies that declare a fall and the mean of the statistic, then
the smallest true drop of the grid detected with 80% power; with --results, one JSON row each
(`statistic`, `true_drop`, `seeds`, `checkpoints`, `noise`, `rejection_rate`, ...).

The false-positive rate (true drop 0) of late_drop and crossfit_drop must stay at or below the
nominal 5% (their one-sided level is 2.5%), up to simulation noise: sqrt(0.05 * 0.95 / sims).
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts import study_statistics as statistics  # noqa: E402

STATISTICS = {
    "late_drop": statistics.late_drop,
    "crossfit_drop": statistics.crossfit_drop,
    "peak_drop": lambda curves: statistics.peak_drop(curves)[1],
}


def true_curve(checkpoints, drop, peak, rise):
    """Mean accuracy (points, relative to the peak) at each checkpoint: up to the peak, then down by `drop`."""
    position = np.arange(1, checkpoints + 1) / checkpoints
    peak = max(peak, 1 / checkpoints)
    up = -rise * (peak - position) / peak
    down = -drop * (position - peak) / (1 - peak) if peak < 1 else np.zeros_like(position)
    return np.where(position <= peak, up, down)


def simulate(args, drop, generator):
    """{statistic: (rejection rate, mean value)} over args.sims simulated studies."""
    shape = (args.sims, args.seeds, args.checkpoints)
    rising = true_curve(args.checkpoints, 0.0, args.peak, args.rise)  # up to the peak, then flat
    falling = -true_curve(args.checkpoints, 1.0, args.peak, 0.0)  # 0 up to the peak, then down to 1
    drops = drop + args.drop_sd * generator.standard_normal(shape[:2])  # each seed's own true drop
    studies = (rising - drops[..., None] * falling
               + 5 * generator.standard_normal(shape[:2])[..., None]  # seed offsets: paired statistics cancel them
               + args.noise * generator.standard_normal(shape))
    declared = {name: 0 for name in STATISTICS}
    total = {name: 0.0 for name in STATISTICS}
    for study in studies:
        curves = study.tolist()
        for name, statistic in STATISTICS.items():
            interval = statistic(curves)
            declared[name] += interval.falls
            total[name] += interval.mean
    return {name: (declared[name] / args.sims, total[name] / args.sims) for name in STATISTICS}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--checkpoints", type=int, default=15)
    parser.add_argument("--noise", type=float, default=0.5, help="independent noise of one checkpoint's accuracy (points)")
    parser.add_argument("--drops", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4],
                        help="true drops from the peak to the last checkpoint (points)")
    parser.add_argument("--peak", type=float, default=1 / 3, help="where the true curve peaks, as a fraction of the run")
    parser.add_argument("--rise", type=float, default=5.0, help="how much the true curve rises to its peak (points)")
    parser.add_argument("--drop_sd", type=float, default=0.0, help="seed-to-seed spread of the true drop (points)")
    parser.add_argument("--sims", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None, help="append JSON rows here")
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.checkpoints < 3 or args.sims < 1 or not 0 < args.peak <= 1:
        parser.error("--seeds >= 2, --checkpoints >= 3, --sims >= 1 and 0 < --peak <= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    generator = np.random.default_rng(args.seed)
    started = time.time()
    settings = {"seeds": args.seeds, "checkpoints": args.checkpoints, "noise": args.noise, "peak": args.peak,
                "rise": args.rise, "drop_sd": args.drop_sd, "sims": args.sims}
    print(f"{args.sims} simulated studies per true drop: " + ", ".join(f"{k} {v:g}" for k, v in settings.items()))
    print(f"{'true drop':>9} " + " ".join(f"{name + ' declared':>22} {'mean':>7}" for name in STATISTICS))
    rows = []
    for drop in args.drops:
        found = simulate(args, drop, generator)
        print(f"{drop:9.2f} " + " ".join(f"{rate:22.3f} {mean:7.2f}" for rate, mean in found.values()), flush=True)
        rows += [{"statistic": name, "true_drop": drop, **settings, "rejection_rate": rate, "mean_statistic": mean}
                 for name, (rate, mean) in found.items()]
    noise = math.sqrt(0.05 * 0.95 / args.sims)
    for name in STATISTICS:
        powered = [row["true_drop"] for row in rows if row["statistic"] == name and row["rejection_rate"] >= 0.8]
        false_positive = next((row["rejection_rate"] for row in rows if row["statistic"] == name
                               and row["true_drop"] == 0), None)
        print(f"{name}: false-positive rate {'-' if false_positive is None else f'{false_positive:.3f}'} "
              f"(nominal 0.05, simulation noise {noise:.3f}); smallest true drop of the grid detected with "
              f"80% power: {min(powered) if powered else 'none'}")
    print(f"{time.time() - started:.1f} s")
    if args.results:
        with open(args.results, "a") as handle:
            handle.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)


if __name__ == "__main__":
    main()
