"""mine.py's options turned into estimates, and what an estimate leaves behind: the printed
lines, the results row and its file, and the TensorBoard layout.

    printed       `I(X;T) of {model} of {epoch}-th epoch is : {value}` (the reference's line),
                  then one line of diagnostics
    results file  <run folder>/mine_{mode}_{dataset}.jsonl (reference protocol) or
                  mine_{mode}_{dataset}_heldout.jsonl, one row per checkpoint: `estimate`,
                  `stderr`, `iteration` (where the estimate comes from), `iterations` (trained),
                  `protocol`, `status`, the settings and the diagnostics
    TensorBoard   mine/I(X;T)_<dataset>[_heldout] against source epoch; the curves against
                  iteration under mine_curve/epoch_<E>/ (reference) or
                  mine_heldout_curve/epoch_<E>/ (held-out protocol)
"""
import math
import re
from pathlib import Path

import torch

from helper.mine import critic, heldout
from helper.results import store_result
from util import UserError

NAMES = {"xt": "I(X;T)", "ty": "I(T;Y)"}
PROTOCOLS = ("reference", "heldout")
CURVE_POINTS = 1000  # per-iteration curves are averaged down to at most this many TensorBoard points


def estimate(opts, a, b):
    """A MineResult per copy of a/b ([N, d] shared or [K, N, d]) under the protocol `opts` names."""
    common = dict(iters=opts.iter_num, lr=opts.lr, batch_size=opts.batch_size, hidden_size=opts.hidden_size,
                  seed=opts.seed, amp=opts.amp, eval_fraction=opts.eval_fraction)
    try:
        if opts.protocol == "heldout":
            return heldout.estimate_mi_heldout(a, b, eval_every=opts.eval_every, patience=opts.patience, **common)
        return critic.estimate_mi_batched(a, b, early_stop=opts.early_stop, **common)
    except critic.MineInputError as err:  # too few rows for the split or batch asked for; a bug still has its traceback
        raise UserError(f"{err} (see --eval_fraction, --batch_size)") from None


def results_file_name(mode, dataset_tag, protocol="reference"):
    suffix = "" if protocol == "reference" else f"_{protocol}"
    return f"mine_{mode}_{dataset_tag}{suffix}.jsonl"


# results_file_name read backwards: (mode, dataset tag, protocol) of a file name, or None.
RESULTS_FILE = re.compile(rf"mine_(?P<mode>{'|'.join(NAMES)})_(?P<dataset>.+?)"
                          rf"(?:_(?P<protocol>{'|'.join(p for p in PROTOCOLS if p != 'reference')}))?\.jsonl")


def parse_results_file_name(name):
    match = RESULTS_FILE.fullmatch(name)
    return match and (match["mode"], match["dataset"], match["protocol"] or "reference")


def critic_settings(opts):
    """What an estimate depends on besides its data: rows made with others do not compare."""
    settings = {"protocol": opts.protocol, "lr": opts.lr, "iter_num": opts.iter_num, "batch_size": opts.batch_size,
                "hidden_size": opts.hidden_size, "seed": opts.seed, "amp": opts.amp,
                "eval_fraction": opts.eval_fraction}
    if opts.protocol == "heldout":
        return {**settings, "patience": opts.patience, "eval_every": opts.eval_every}
    return {**settings, "early_stop": opts.early_stop}


def recorded_settings(opts, run):
    """The settings every row of a results file must share (helper.results.checkpoints_to_do checks them)."""
    return {"run": run, "model": opts.model, "source_dataset": opts.source_dataset, **critic_settings(opts)}


def estimate_row(result, seconds, device):
    """What one critic's run gives, for a results row."""
    return {"estimate": result.estimate, "stderr": result.stderr, "iteration": result.iteration,
            "heldout_estimate": result.heldout_estimate, "status": result.diagnostics["status"],
            "iterations": result.iterations, "seconds": round(seconds, 3), "device": str(device),
            "diagnostics": result.diagnostics}


def report_checkpoint(opts, run, epoch, path, result, seconds, group_size, device, results_path, writer, tag):
    """The reference's line and a line of diagnostics, the results row, the TensorBoard scalars."""
    name = NAMES[opts.mode]
    print(f"{name} of {opts.model} of {epoch}-th epoch is : {result.estimate}", flush=True)
    print(f"  {describe(result)}", flush=True)
    row = {**recorded_settings(opts, run), **estimate_row(result, seconds, device),
           "epoch": epoch, "checkpoint": Path(path).name, "mode": opts.mode, "dataset": opts.dataset,
           "batch_ckpts": group_size, "skipped_steps": result.skipped_steps, "heldout_curve": result.heldout_curve}
    store_result(results_path, row, keys=("mode", "dataset", "epoch"))
    write_tensorboard(writer, f"{name}_{tag}", epoch, result)


def describe(result):
    diagnostics = result.diagnostics
    if result.protocol == "heldout":
        if diagnostics["status"] == "stopped":
            stop = f"stopped: no better held-out bound for {diagnostics['patience']} iterations"
        elif result.iterations < diagnostics["patience"]:
            stop = f"--iter_num reached before early stopping could act (--patience {diagnostics['patience']})"
        else:
            stop = f"--iter_num reached within {diagnostics['patience']} iterations of the best evaluation"
        count = diagnostics["smoothed_over"]
        parts = [f"held-out bound {result.estimate:.4f} +- {result.stderr:.4f} at iteration {result.iteration} "
                 f"(mean of {count} evaluation{'s' if count > 1 else ''})",
                 f"{result.iterations} iterations ({stop})",
                 f"training-batch estimate {diagnostics['train_estimate']:.4f}"]
        if diagnostics["best_at_first_eval"]:
            parts.append("best at the first evaluation: no dependence that generalises was found")
        if result.skipped_steps:
            parts.append(f"{result.skipped_steps} non-finite steps skipped")
        return ", ".join(parts)
    change = diagnostics["rel_change"]
    parts = [f"status {diagnostics['status']}",
             f"change over the last {diagnostics['span']} iterations {change:+.1%}" if change is not None
             else "too few iterations for a trend",
             f"{result.iterations} iterations"]
    if result.skipped_steps:
        parts.append(f"{result.skipped_steps} non-finite steps skipped")
    if result.heldout_estimate is not None:
        peak_iteration, peak = diagnostics["heldout_peak"]
        parts.append(f"held-out {result.heldout_estimate:.4f} (peak {peak:.4f} at iteration {peak_iteration})")
        if diagnostics["overfitting"]:
            parts.append("the critic overfits: the estimate exceeds the held-out bound")
    return ", ".join(parts)


def write_tensorboard(writer, tag, epoch, result):
    """The estimate against source epoch, and the run's curves against iteration.

    The held-out protocol's scalars end in `_heldout` and its curves live under
    `mine_heldout_curve/`, apart from the reference protocol's `mine_curve/` (whose `_heldout`
    curve and `mine_heldout/` scalar are its --eval_fraction diagnostic), so that both
    protocols run on one run folder never write the same tag.
    """
    if result.protocol == "heldout":
        writer.add_scalar(f"mine/{tag}_heldout", result.estimate, epoch)
        curves = f"mine_heldout_curve/epoch_{epoch}/{tag}"
        for step, bound, _ in curve_points(result):
            writer.add_scalar(f"{curves}_train", bound, step)  # on the training batches
        for step, heldout in result.heldout_curve:
            writer.add_scalar(f"{curves}_bound", heldout, step)
        writer.flush()
        return
    writer.add_scalar(f"mine/{tag}", result.estimate, epoch)
    if result.heldout_estimate is not None:
        writer.add_scalar(f"mine_heldout/{tag}", result.heldout_estimate, epoch)
    curves = f"mine_curve/epoch_{epoch}/{tag}"
    for step, bound, smoothed in curve_points(result):
        writer.add_scalar(f"{curves}_bound", bound, step)
        writer.add_scalar(f"{curves}_smoothed", smoothed, step)
    for step, heldout in result.heldout_curve:
        writer.add_scalar(f"{curves}_heldout", heldout, step)
    writer.flush()


def curve_points(result, points=CURVE_POINTS):
    """(iteration, mean bound of the bucket, smoothed bound) at <= `points` bucket ends."""
    bucket = max(1, math.ceil(result.iterations / points))
    smoothed = result.smoothed()
    for end in range(bucket, result.iterations + bucket, bucket):
        end = min(end, result.iterations)
        chunk = result.curve[end - bucket:end]
        chunk = chunk[torch.isfinite(chunk)]
        if len(chunk):
            yield end, float(chunk.mean()), float(smoothed[end - 1])
