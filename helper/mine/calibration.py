"""MINE on problems of known mutual information (`mine.py --calibrate`): how far an
estimator, with given critic settings and protocol, lands from the truth.

    gaussian  X ~ N(0, I_dim), Y = rho X + sqrt(1 - rho^2) Z: each of the `dim` coordinate
              pairs carries -1/2 log(1 - rho^2) nats
    cubic     the same with Y replaced by Y^3 coordinate-wise: an invertible map of one side,
              so the MI is unchanged while the critic sees heavy tails
    classes   T in R^dim is one of C well-separated class means plus small noise and Y the
              one-hot class (balanced): T determines Y, so I(T;Y) = H(Y) = log C

All problems of one call train as one batched run; each prints a line and, with --results,
appends a JSON row (protocol, problem, dim, true_mi, estimate, stderr, iteration,
iterations, seconds and the settings), so that calibrations can be compared by a script.
"""
import math
import time

import torch

from helper.mine import critic
from helper.mine.report import critic_settings, estimate, estimate_row
from helper.results import append_result, check_writable, read_results
from util import UserError

PROBLEMS = ("gaussian", "cubic", "classes")
CLASS_SCALE, CLASS_NOISE = 3.0, 0.1  # class means 3 * orthonormal directions apart, noise 0.1 per coordinate


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


def class_problem(rows, dim, classes, columns, *, generator=None, device=None):
    """(T [rows, dim], one-hot Y [rows, columns], H(Y) in nats): balanced labels, T = a class mean
    plus noise, the means CLASS_SCALE apart along orthonormal directions; Y's columns past
    `classes` stay 0 (so problems with different class counts stack)."""
    if dim < classes:
        raise UserError(f"--calibrate classes needs --dim >= the class count ({classes}) for separated class means")
    labels = (torch.arange(rows, device=device) % classes)[torch.randperm(rows, generator=generator, device=device)]
    directions, _ = torch.linalg.qr(torch.randn(dim, classes, generator=generator, device=device))
    features = CLASS_SCALE * directions.T[labels] + CLASS_NOISE * torch.randn(rows, dim, generator=generator,
                                                                              device=device)
    share = torch.bincount(labels, minlength=classes).double() / rows
    return features, torch.eye(columns, device=device)[labels], float(-(share * share.log()).sum())


def problems(args, generator, device):
    """[(parameter, true MI)] and the stacked a, b of every problem of --calibrate."""
    rows = args.calibrate_rows
    if args.calibrate == "classes":
        if args.classes is None or args.rho is not None or args.true_mi is not None:
            raise UserError("--calibrate classes takes --classes (and no --rho or --true_mi)")
        made = [class_problem(rows, args.dim, count, max(args.classes), generator=generator, device=device)
                for count in args.classes]
        return ([(count, truth) for count, (_, _, truth) in zip(args.classes, made)],
                torch.stack([t for t, _, _ in made]), torch.stack([y for _, y, _ in made]))
    if (args.rho is None) == (args.true_mi is None) or args.classes is not None:
        raise UserError(f"--calibrate {args.calibrate} needs exactly one of --rho or --true_mi (and no --classes)")
    if args.rho is not None:
        if not all(-1 < rho < 1 for rho in args.rho):
            raise UserError(f"--rho values must lie strictly between -1 and 1, got {args.rho}")
        pairs = [(rho, gaussian_mi(args.dim, rho)) for rho in args.rho]
    else:
        pairs = [(rho_for_mi(mi, args.dim), mi) for mi in args.true_mi]
    samples = [correlated_gaussians(rows, args.dim, rho, generator=generator, device=device) for rho, _ in pairs]
    warp = (lambda y: y ** 3) if args.calibrate == "cubic" else (lambda y: y)
    return pairs, torch.stack([x for x, _ in samples]), torch.stack([warp(y) for _, y in samples])


def calibrate(args, device):
    """Every problem of --calibrate estimated in one batched run; prints estimate vs truth.
    `args`: mine.py's options."""
    if args.results:  # refused now rather than after the estimates: a foreign or unwritable file
        read_results(args.results)
        check_writable(args.results)
    if args.batch_size > critic.training_row_count(args.calibrate_rows, args.eval_fraction):
        raise UserError(f"--batch_size {args.batch_size} is larger than the training rows of "
                        f"--calibrate_rows {args.calibrate_rows}; lower it or raise --calibrate_rows")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    parameters, a, b = problems(args, generator, device)
    started = time.time()
    results = estimate(args, a, b)
    seconds = time.time() - started
    print(f"MINE calibration ({args.protocol} protocol): {args.calibrate}, dim {args.dim}, {args.calibrate_rows} "
          f"rows, lr {args.lr}, batch {args.batch_size}, hidden {args.hidden_size}, at most {args.iter_num} "
          f"iterations, {seconds:.1f} s on {device}")
    # Reference protocol: the smoothed estimate after a quarter, half and all of the iterations.
    marks = sorted({max(1, args.iter_num * q // 4) for q in (1, 2, 4)})
    if args.protocol == "reference":
        columns = [f"@{m}" for m in marks] + (["held-out"] if args.eval_fraction else [])
    else:
        columns = ["estimate", "stderr", "at iter"]
    parameter_name = "classes" if args.calibrate == "classes" else "rho"
    print(" ".join([f"{'true MI':>8}", f"{parameter_name:>7}"] + [f"{c:>9}" for c in columns]
                   + [f"{'error':>8}", f"{'iters':>6}", "status"]))
    for (parameter, truth), result in zip(parameters, results):
        row = calibration_row(args, parameter, truth, result, marks, seconds / len(results), device)
        if args.protocol == "reference":
            cells = [f"{value:9.4f}" for value in row["estimate_at"].values()]
            if args.eval_fraction:
                cells.append(f"{result.heldout_estimate:9.4f}")
            status = result.diagnostics["status"] + (", overfitting" if result.diagnostics["overfitting"] else "")
        else:
            cells = [f"{result.estimate:9.4f}", f"{result.stderr:9.4f}", f"{result.iteration:9d}"]
            status = result.diagnostics["status"] + (", above truth + 2 SE" if row["above_truth"] else "")
        shown = f"{parameter:7d}" if parameter_name == "classes" else f"{parameter:7.4f}"
        print(" ".join([f"{truth:8.4f}", shown] + cells
                       + [f"{row['error']:+8.1%}", f"{result.iterations:6d}", status]), flush=True)
        if args.results:
            append_result(args.results, row)  # calibration rows accumulate: one per problem and setting


def calibration_row(args, parameter, truth, result, marks, seconds, device):
    smoothed = result.smoothed()
    at_marks = [float(smoothed[m - 1]) if m <= result.iterations else float("nan") for m in marks]
    stderr = result.stderr or 0.0
    return {**critic_settings(args), **estimate_row(result, seconds, device),
            "mode": "calibrate", "problem": args.calibrate, "dim": args.dim,
            "classes" if args.calibrate == "classes" else "rho": parameter, "true_mi": truth,
            "rows": args.calibrate_rows, "error": (result.estimate - truth) / truth,
            "above_truth": result.estimate > truth + 2 * stderr,
            "estimate_at": dict(zip(map(str, marks), at_marks))}
