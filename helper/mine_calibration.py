"""MINE on problems of known mutual information (`mine.py --calibrate`): how far the
estimator, with given critic settings, lands from the truth.

gaussian: X ~ N(0, I_dim), Y = rho X + sqrt(1 - rho^2) Z, so that each of the `dim`
coordinate pairs carries -1/2 log(1 - rho^2) nats. All problems of one call train as
one batched run; each prints a line and, with --results, writes a JSON row.
"""
import math
import time

import torch

from helper import mine
from helper.mine_report import critic_settings, estimate_row
from helper.results import append_result, check_writable, read_results
from util import UserError


def gaussian_mi(dim, rho):
    """True I(X;Y) in nats of X, Y in R^dim with coordinate pairs of correlation rho."""
    return -dim / 2 * math.log(1 - rho ** 2)


def rho_for_mi(mi, dim):
    """The correlation at which `dim` coordinate pairs carry `mi` nats."""
    return math.sqrt(1 - math.exp(-2 * mi / dim))


def correlated_gaussians(rows, dim, rho, *, generator=None, device=None):
    """X ~ N(0, I), Y = rho X + sqrt(1 - rho^2) Z: [rows, dim] each, I(X;Y) = gaussian_mi(dim, rho)."""
    x = torch.randn(rows, dim, generator=generator, device=device)
    noise = torch.randn(rows, dim, generator=generator, device=device)
    return x, rho * x + math.sqrt(1 - rho ** 2) * noise


def calibrate(args, device):
    """Correlated Gaussians of known MI, all estimated in one batched run; prints estimate vs truth.
    `args`: mine.py's options."""
    rhos, truths = calibration_problems(args)
    if args.results:  # refused now rather than after the estimates: a foreign or unwritable file
        read_results(args.results)
        check_writable(args.results)
    if args.batch_size > mine.training_row_count(args.calibrate_rows, args.eval_fraction):
        raise UserError(f"--batch_size {args.batch_size} is larger than the training rows of "
                             f"--calibrate_rows {args.calibrate_rows}; lower it or raise --calibrate_rows")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    pairs = [correlated_gaussians(args.calibrate_rows, args.dim, rho, generator=generator, device=device)
             for rho in rhos]
    started = time.time()
    results = mine.estimate_mi_batched(torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs]),
                                       iters=args.iter_num, lr=args.lr, batch_size=args.batch_size,
                                       hidden_size=args.hidden_size, seed=args.seed, amp=args.amp,
                                       eval_fraction=args.eval_fraction, early_stop=args.early_stop)
    seconds = time.time() - started
    # The smoothed estimate (mean of the last 500 bounds) after a quarter, half and all of the iterations.
    marks = sorted({max(1, args.iter_num * q // 4) for q in (1, 2, 4)})
    print(f"MINE calibration: correlated Gaussians, dim {args.dim}, {args.calibrate_rows} rows, lr {args.lr}, "
          f"batch {args.batch_size}, hidden {args.hidden_size}, {args.iter_num} iterations, {seconds:.1f} s on {device}")
    print(" ".join([f"{'true MI':>8}", f"{'rho':>7}"] + [f"{f'@{m}':>9}" for m in marks]
                   + [f"{'error':>8}", f"{'held-out':>9}", "status"]))
    for rho, truth, result in zip(rhos, truths, results):
        smoothed = result.smoothed()
        at_marks = [float(smoothed[m - 1]) if m <= result.iterations else float("nan") for m in marks]
        error = (result.estimate - truth) / truth
        heldout = "" if result.heldout_estimate is None else f"{result.heldout_estimate:.4f}"
        status = result.diagnostics["status"] + (", overfitting" if result.diagnostics["overfitting"] else "")
        print(" ".join([f"{truth:8.4f}", f"{rho:7.4f}"] + [f"{value:9.4f}" for value in at_marks]
                       + [f"{error:+8.1%}", f"{heldout:>9}", status]), flush=True)
        if args.results:
            # calibration rows accumulate: one per problem and setting
            append_result(args.results, calibration_row(args, rho, truth, result, marks, at_marks,
                                                             seconds / len(results), device))


def calibration_row(args, rho, truth, result, marks, at_marks, seconds, device):
    return {**critic_settings(args), **estimate_row(result, seconds, device),
            "mode": "calibrate", "problem": "gaussian", "dim": args.dim, "rho": rho, "true_mi": truth,
            "rows": args.calibrate_rows, "estimate_at": dict(zip(map(str, marks), at_marks))}


def calibration_problems(args):
    """(rhos, true MIs) from --rho or --true_mi."""
    if (args.rho is None) == (args.true_mi is None):
        raise UserError("--calibrate gaussian needs exactly one of --rho or --true_mi")
    if args.rho is not None:
        if not all(-1 < rho < 1 for rho in args.rho):
            raise UserError(f"--rho values must lie strictly between -1 and 1, got {args.rho}")
        return args.rho, [gaussian_mi(args.dim, rho) for rho in args.rho]
    return [rho_for_mi(mi, args.dim) for mi in args.true_mi], args.true_mi
