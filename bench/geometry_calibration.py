"""The noisy-feature information estimator (helper/geometry/information.py) on problems of known answer.

    python bench/geometry_calibration.py --results bench/geometry_calibration_cpu.jsonl    # a few CPU minutes
    python bench/geometry_calibration.py --results bench/geometry_calibration_cpu.jsonl --table

The grid: T ~ N(0, I_D) with absolute noise s (truth D/2 log(1 + 1/s^2)) for D in 1, 10, 32,
128 and N in 2,000 and 10,000, at noise levels putting the truth between about 0.01 nats and
beyond log N; and Gaussian classes (4 classes in 16 dimensions, unit within-class spread, means
0, 2, 4 and 20 apart; truth by Monte Carlo over the exact model) for I(T_s;Y) and I(X;T_s).
Each problem is one `geometry.py --calibrate` call's rows (helper/geometry/calibration.py);
rows already in --results are skipped, so an interrupted grid resumes. The table gives, per
quantity, how many in-range rows (true I(X;T_s) at most log(N) / 2) land within 10% of the truth, the
largest in-range error, and for I(T_s;Y) how often the sample mixture's value and the
held-out one bracket the truth.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helper.geometry.calibration import classes_rows, gaussian_rows  # noqa: E402
from helper.results import append_result, read_results  # noqa: E402

# Noise levels per dimension count: from a truth near log N down to about 0.01 nats.
GAUSSIAN_NOISE = {1: [0.1, 0.25, 0.5, 1, 2, 4, 8], 10: [0.5, 1, 2, 4, 8, 16], 32: [1, 2, 4, 8, 16, 32],
                  128: [2, 4, 8, 16, 32, 64]}
CLASSES = {"dim": 16, "classes": 4, "separations": [0, 2, 4, 20], "noise": [0.5, 1, 2, 4]}


def problems():
    for rows in (2000, 10000):
        for dim, noise in GAUSSIAN_NOISE.items():
            yield {"problem": "gaussian", "dim": dim, "rows": rows}, lambda d=dim, r=rows, n=noise: gaussian_rows(d, r, n)
        for separation in CLASSES["separations"]:
            yield ({"problem": "classes", "dim": CLASSES["dim"], "rows": rows, "separation": separation},
                   lambda r=rows, s=separation: classes_rows(CLASSES["dim"], r, CLASSES["classes"], s, CLASSES["noise"]))


def run_grid(results):
    done = read_results(results)
    for key, compute in problems():
        if any(all(row.get(k) == v for k, v in key.items()) for row in done):
            continue
        started = time.time()
        rows = compute()
        for row in rows:
            append_result(results, {**row, "seconds": round((time.time() - started) / len(rows), 3)})
        print(f"{key}: {len(rows)} rows, {time.time() - started:.1f} s", flush=True)


def table(results):
    rows = read_results(results)
    lines = ["| problem | D | N | noise | quantity | truth | estimate +- SE | error | reading |",
             "|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for row in rows:
        error = f"{row['estimate'] / row['true_mi'] - 1:+.1%}" if row["true_mi"] > 1e-9 else "-"
        reading = ("out of range" if not row["in_range"] else "within 10%" if row["within_tolerance"]
                   else "not within 10%")
        if row["quantity"] == "i_ty":
            reading += f"; held-out {row['heldout']:.3f}, " + ("brackets" if row["bracketed"] else "does not bracket")
        problem = row["problem"] + (f" sep {row['separation']:g}" if "separation" in row else "")
        lines.append(f"| {problem} | {row['dim']} | {row['rows']} | {row['noise']:g} | {row['quantity']} | "
                     f"{row['true_mi']:.4f} | {row['estimate']:.4f} +- {row['stderr']:.4f} | {error} | {reading} |")
    print("\n".join(lines))
    for quantity in ("i_xt", "i_ty"):
        in_range = [r for r in rows if r["quantity"] == quantity and r["in_range"] and r["true_mi"] > 1e-9]
        if in_range:
            worst = max(in_range, key=lambda r: abs(r["estimate"] / r["true_mi"] - 1))
            print(f"\n{quantity}: {sum(r['within_tolerance'] for r in in_range)} of {len(in_range)} in-range rows "
                  f"(truth > 0) within 10%; largest error {worst['estimate'] / worst['true_mi'] - 1:+.1%} "
                  f"({worst['problem']}, D {worst['dim']}, N {worst['rows']}, noise {worst['noise']:g}, truth "
                  f"{worst['true_mi']:.4f})")
    ty = [r for r in rows if r["quantity"] == "i_ty"]
    if ty:
        print(f"i_ty: the sample mixture's value and the held-out one bracket the truth in "
              f"{sum(r['bracketed'] for r in ty)} of {len(ty)} rows")
        for resolved in (True, False):
            zero = [r for r in ty if r["true_mi"] < 1e-9 and r["in_range"] == resolved]
            if zero:
                print(f"identical classes (truth 0), I(X;T_s) {'in' if resolved else 'out of'} range: the sample "
                      f"mixture reads {min(r['estimate'] for r in zero):.4f} to {max(r['estimate'] for r in zero):.4f},"
                      f" the held-out value {min(r['heldout'] for r in zero):.4f} to "
                      f"{max(r['heldout'] for r in zero):.4f}")
    dpi = [(xt, ty) for xt in rows for ty in rows if xt["quantity"] == "i_xt" and ty["quantity"] == "i_ty"
           and all(xt.get(k) == ty.get(k) for k in ("problem", "dim", "rows", "noise", "separation"))]
    print(f"data-processing inequality: I(T_s;Y) <= I(X;T_s) in {sum(t['estimate'] <= x['estimate'] for x, t in dpi)} "
          f"of {len(dpi)} paired rows")
    seconds = [r["seconds"] for r in rows if r["problem"] == "gaussian" and r["rows"] == 10000 and r["dim"] == 128]
    if seconds:
        print(f"N = 10,000, D = 128: {sum(seconds) / len(seconds):.1f} s per noise level (6 levels per call)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--table", action="store_true", help="only print the table of what --results holds")
    args = parser.parse_args(argv)
    if not args.table:
        run_grid(args.results)
    table(args.results)


if __name__ == "__main__":
    main()
