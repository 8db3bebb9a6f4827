"""Problems of known answer for helper.geometry.information, and `geometry.py --calibrate`.

    gaussian  T ~ N(0, I_D), X the row, absolute noise s per dimension:
              I(X;T_s) = D/2 log(1 + 1/s^2) exactly
    classes   C classes with means at pairwise distance `separation` (on orthogonal axes, D >= C)
              and unit within-class noise: T | Y=c ~ N(mu_c, I_D), so T_s | Y=c ~ N(mu_c, (1+s^2) I_D).
              I(T_s;Y) = log C - E[H(Y | T_s)] and I(X;T_s) = h(T_s) - D/2 log(2 pi e s^2) have no
              closed form; the truth is a Monte Carlo average over TRUTH_SAMPLES draws of the
              exact model (its standard error is in the row). Separation 0 makes the classes
              identical (I(T_s;Y) = 0); a separation many times sqrt(1 + s^2) gives log C.

Each row: the problem, its size, the noise, which quantity, the truth, the estimate with its
standard error, whether the truth is in the range the estimator is meant for (at most
log(N) / 2 of the true I(X;T_s), for both quantities) and whether the estimate is within 10%
of it (0.01 nats of a truth of 0); for I(X;T_s) the pairwise bounds on
the sample mixture's value, for I(T_s;Y) the held-out value and whether the two bracket the
truth (within two standard errors).
"""
import math
import time

import torch

from helper.geometry.information import noisy_information
from helper.results import append_result, check_writable, read_results

PROBLEMS = ("gaussian", "classes")
TRUTH_SAMPLES = 200_000
TOLERANCE = 0.10  # the relative error the estimator is held to in range
ZERO, ZERO_TOLERANCE = 1e-9, 0.01  # a truth below ZERO counts as 0, and is held to an absolute error
FLOAT_SLACK = 1e-6  # float32 rounding of values that equal the truth (log C when classes are apart)


def gaussian_truth(dim, noise):
    return dim / 2 * math.log1p(1 / noise ** 2)


def gaussian_rows(dim, rows, noise_levels, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(rows, dim, generator=generator).to(device)
    found = noisy_information(features, None, noise_levels, relative=False, seed=seed + 1)
    return [calibration_row("gaussian", dim, rows, result, "i_xt", gaussian_truth(dim, result.noise), 0.0)
            for result in found]


def class_means(classes, dim, separation):
    if dim < classes:
        raise ValueError(f"--calibrate classes needs --dim ({dim}) at least --classes ({classes})")
    return torch.eye(classes, dim, dtype=torch.float64) * separation / math.sqrt(2)


def class_truths(classes, dim, separation, noise, seed=0):
    """({'i_xt': truth, 'i_ty': truth}, {'i_xt': its standard error, 'i_ty': ...}) by Monte Carlo
    over the exact model: T_s = mu_Y + sqrt(1 + s^2) W."""
    generator = torch.Generator().manual_seed(seed)
    means = class_means(classes, dim, separation)
    spread = 1 + noise ** 2
    labels = torch.randint(classes, (TRUTH_SAMPLES,), generator=generator)
    points = means[labels] + math.sqrt(spread) * torch.randn(TRUTH_SAMPLES, dim, generator=generator,
                                                              dtype=torch.float64)
    log_likelihood = -((points[:, None, :] - means[None]) ** 2).sum(2) / (2 * spread)  # up to a shared constant
    log_mixture = torch.logsumexp(log_likelihood, 1) - math.log(classes)
    # log p(y | t) - log p(y) = log p(t | y) - log p(t): the shared constants cancel
    posterior = log_likelihood.gather(1, labels[:, None])[:, 0] - log_mixture
    per_sample = {"i_ty": posterior,
                  # -log p(t) - h(noise): the Gaussian constants of p(t) and of h(T_s | X) cancel to this
                  "i_xt": -log_mixture + dim / 2 * math.log(spread / noise ** 2) - dim / 2}
    return ({key: float(value.mean()) for key, value in per_sample.items()},
            {key: float(value.std() / math.sqrt(TRUTH_SAMPLES)) for key, value in per_sample.items()})


def classes_rows(dim, rows, classes, separation, noise_levels, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(rows) % classes
    features = (class_means(classes, dim, separation)[labels]
                + torch.randn(rows, dim, generator=generator, dtype=torch.float64)).float().to(device)
    found = noisy_information(features, labels.to(device), noise_levels, relative=False, seed=seed + 1)
    table = []
    for result in found:
        truth, truth_error = class_truths(classes, dim, separation, result.noise, seed + 2)
        for quantity in ("i_xt", "i_ty"):
            row = calibration_row("classes", dim, rows, result, quantity, truth[quantity], truth_error[quantity],
                                  resolved=truth["i_xt"] <= math.log(rows) / 2)
            table.append({**row, "classes": classes, "separation": separation})
    return table


def calibration_row(problem, dim, rows, result, quantity, truth, truth_error, resolved=None):
    """One row; `resolved`: whether the true I(X;T_s) is at most log(rows) / 2, the range both
    estimates are meant for (by default this row's own truth decides)."""
    estimate, error = getattr(result, quantity), getattr(result, f"{quantity}_stderr")
    in_range = truth <= math.log(rows) / 2 if resolved is None else resolved
    # A truth of 0 has no relative error: there the estimate must be within 0.01 nats.
    tolerance = TOLERANCE * truth if truth > ZERO else ZERO_TOLERANCE
    row = {"problem": problem, "dim": dim, "rows": rows, "noise": result.noise, "quantity": quantity,
           "true_mi": truth, "true_mi_stderr": truth_error, "estimate": estimate, "stderr": error,
           "in_range": in_range, "within_tolerance": abs(estimate - truth) <= tolerance}
    if quantity == "i_xt":
        row.update(pairwise_lower=result.i_xt_lower, pairwise_upper=result.i_xt_upper)
    else:  # the sample mixture's value reads high, the held-out one low: together they bracket it
        slack = 2 * error + 2 * truth_error + FLOAT_SLACK
        row.update(heldout=result.i_ty_heldout, bracketed=result.i_ty_heldout - slack <= truth <= estimate + slack)
    return row


def calibrate(opts, device):
    """`geometry.py --calibrate`: every problem of the call, a printed line and (with --results) a
    JSON row each. `opts`: geometry.py's options."""
    if opts.results:  # refused now rather than after the estimates: a foreign or unwritable file
        read_results(opts.results)
        check_writable(opts.results)
    started = time.time()
    if opts.calibrate == "gaussian":
        rows = gaussian_rows(opts.dim, opts.rows, opts.noise, opts.seed, device)
    else:
        rows = [row for separation in opts.separation
                for row in classes_rows(opts.dim, opts.rows, opts.classes, separation, opts.noise, opts.seed, device)]
    seconds = time.time() - started
    print(f"noisy-feature information, calibration: {opts.calibrate}, dim {opts.dim}, {opts.rows} rows"
          + (f", {opts.classes} classes" if opts.calibrate == "classes" else "") + f", {seconds:.1f} s on {device}")
    print(f"{'quantity':>9} {'sep':>5} {'noise':>6} {'truth':>8} {'estimate':>9} {'stderr':>7} {'error':>7}  reading")
    for row in rows:
        print(f"{row['quantity']:>9} {row.get('separation', '-'):>5} {row['noise']:6.3g} {row['true_mi']:8.4f} "
              f"{row['estimate']:9.4f} {row['stderr']:7.4f} {relative_error(row):>7}  {reading(row)}", flush=True)
        if opts.results:
            append_result(opts.results, {**row, "seed": opts.seed, "device": str(device)})


def relative_error(row):
    return f"{row['estimate'] / row['true_mi'] - 1:+.1%}" if row["true_mi"] > 0 else "-"


def reading(row):
    """What the row says against the estimator's promise."""
    if not row["in_range"]:
        return f"truth above log(N)/2 = {math.log(row['rows']) / 2:.2f}: out of range"
    verdicts = ["within 10%" if row["within_tolerance"] else "NOT within 10%"]
    if row["quantity"] == "i_ty":
        verdicts.append(f"held-out {row['heldout']:.4f}, " + ("brackets the truth" if row["bracketed"]
                                                              else "does NOT bracket the truth"))
    return "; ".join(verdicts)
