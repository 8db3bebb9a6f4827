"""MINE estimates of I(X;T) and I(T;Y) for every checkpoint of a run folder (SPEC 8).

    python mine.py --mode xt --model resnext32_16x4d --dataset cifar100 \
      --ckpt_path {folder} --lr 8e-5 --iter_num 1e+4 --start_epoch 2 --skip 2
    python mine.py --mode ty --model resnext32_16x4d --dataset cinic10 \
      --ckpt_path {folder} --lr 1e-5 --iter_num 2e+4 --start_epoch 2 --skip 2

X: the normalised evaluation images of --dataset, flattened; T: the checkpoint's pooled
penultimate features (eval mode); Y: one-hot labels. Per checkpoint: the reference's line
`I(X;T) of {model} of {epoch}-th epoch is : {value}`, a line of convergence diagnostics,
one JSON-lines row in <run folder>/mine_<mode>_<dataset>.jsonl, and TensorBoard scalars
`mine/I(X;T)_<dataset>` (by source epoch) plus the per-iteration bound and its smoothed
value under `mine_curve/epoch_<E>/` in save/tensorboard/<run name>/. Checkpoints already
in the results file are skipped (--force to redo).

    python mine.py --calibrate gaussian --dim 10 --true_mi 0.5 1 2 4 --lr 1e-5 --iter_num 5000 --eval_fraction 0.1

estimates correlated Gaussians of known MI with the same critic and settings and prints
estimate vs truth; bench/BENCHMARKS.md ("MINE: calibration ...") records such tables and
the lr and iteration count they support. With --eval_fraction the critic never trains on
that share of the rows, and a results row says whether the estimate exceeds the bound on
them (`overfitting`: the critic memorises the sample instead of measuring the dependence).
"""
import math
import sys
import time
from pathlib import Path

import torch

import util
from dataset import canonical_name, dataset_info, load_arrays
from helper import mine
from helper.features import extract_features, normalised_images
from helper.steps import configure_backends
from models import build_model

# The README's settings, used when --lr / --iter_num are not given.
DEFAULT_LR = {"xt": 8e-5, "ty": 1e-5}
DEFAULT_ITERS = {"xt": 10000, "ty": 20000}
# Checkpoints per batched run. I(T;Y)'s critic has a small first layer, so fewer critics
# leave the GPU waiting on Python's dispatch; 8 measured 2.6x faster than 1 (BENCHMARKS.md).
DEFAULT_BATCH_CKPTS = {"xt": 4, "ty": 8}
NAMES = {"xt": "I(X;T)", "ty": "I(T;Y)"}
CURVE_POINTS = 1000  # per-iteration curves are averaged down to at most this many TensorBoard points


def parse_option(argv=None):
    parser = util.ArgumentParser(description="MINE estimates of I(X;T) and I(T;Y) per checkpoint")
    add = parser.add_argument
    add("--mode", default="xt", choices=("xt", "ty"), help="xt: I(X;T), ty: I(T;Y)")
    add("--model", default="resnext32_16x4d", type=util.model_name)
    add("--dataset", default="cifar100", help="data set whose evaluation split is X and Y")
    add("--source_dataset", default="cifar100", help="data set the checkpoints were trained on (sets the class count)")
    add("--ckpt_path", default=None, help="run folder: a name under save/model/ or a path")
    add("--lr", type=util.positive(float), default=None, help="critic Adam lr (default 8e-5 for xt, 1e-5 for ty)")
    add("--iter_num", type=util.positive(), default=None, help="critic iterations (default 1e4 for xt, 2e4 for ty)")
    add("--start_epoch", type=int, default=2, help="first checkpoint epoch to estimate")
    add("--skip", type=util.positive(), default=2, help="estimate epochs start_epoch, start_epoch+skip, ...")
    add("--batch_size", type=util.positive(), default=5000, help="rows per joint and per marginal batch")
    add("--hidden_size", type=util.positive(), default=1024, help="width of the critic's three hidden layers")
    add("--data_root", default="./data")
    add("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    add("--shard", default=None,
        help="i/n with 0 <= i < n: estimate every n-th checkpoint starting at the i-th (counting from 0)")
    add("--results", default=None, help="JSON-lines results file (default: in the run folder)")
    add("--force", action="store_true", help="re-estimate checkpoints already in the results file")
    add("--seed", type=int, default=0, help="critic initialisation and batch draws")
    add("--amp", action="store_true", help="bf16 autocast for features and critic")
    add("--eval_fraction", type=float, default=0.0,
        help="hold out this fraction of rows and report the bound on them (0: train on all, as the reference)")
    add("--early_stop", action="store_true",
        help=f"stop a critic once its smoothed estimate (mean of {mine.AVERAGE_LAST} bounds) has changed by "
             f"less than {100 * mine.TOLERANCE:g}%% over {mine.TREND_SPAN * mine.AVERAGE_LAST} iterations, at two checks "
             f"{mine.AVERAGE_LAST} iterations apart")
    add("--batch_ckpts", type=util.positive(), default=None,
        help="checkpoints estimated together in one batched run (default 4 for xt, 8 for ty): a speed setting, "
             "the same estimates up to float rounding (each critic starts and samples as if alone); "
             "bench/BENCHMARKS.md times it")
    add("--calibrate", choices=("gaussian",), default=None,
        help="estimate correlated Gaussians of known MI instead of checkpoints")
    add("--dim", type=util.positive(), default=1, help="--calibrate: dimension of X and of Y")
    add("--rho", type=float, nargs="+", default=None, help="--calibrate: per-coordinate correlations")
    add("--true_mi", type=util.positive(float), nargs="+", default=None, help="--calibrate: true MI values (nats)")
    add("--calibrate_rows", type=util.positive(), default=10000,
        help="--calibrate: samples per problem (10000 = the size of CIFAR-100's test split)")
    args = parser.parse_args(argv)
    args.lr = args.lr or DEFAULT_LR[args.mode]
    args.iter_num = args.iter_num or DEFAULT_ITERS[args.mode]
    args.batch_ckpts = args.batch_ckpts or DEFAULT_BATCH_CKPTS[args.mode]
    return args


def main(argv=None):
    args = parse_option(argv)
    device = util.pick_device(args.device)
    util.check_bf16(device, args.amp)
    configure_backends(device)
    if not 0 <= args.eval_fraction < 1:
        raise util.UserError(f"--eval_fraction must be in [0, 1), got {args.eval_fraction}")
    if args.calibrate:
        return calibrate(args, device)
    if not args.ckpt_path:
        raise util.UserError("--ckpt_path is required (a run folder under save/model/ or a path), "
                             "unless --calibrate is given")
    return estimate_checkpoints(args, device)


# --------------------------------------------------------------------------- checkpoints

def estimate_checkpoints(args, device):
    selection = util.selected_checkpoints(args.ckpt_path, args.start_epoch, args.skip, args.shard)
    run_folder = selection.run_folder
    args.dataset, args.source_dataset = map(canonical_name, (args.dataset, args.source_dataset))
    dataset_tag = util.dataset_tag(args.dataset)
    results_path = Path(args.results or run_folder / f"mine_{args.mode}_{dataset_tag}.jsonl")
    todo = util.checkpoints_to_do(selection, results_path, recorded_settings(args, selection.run), args.force,
                                  match={"mode": args.mode, "dataset": args.dataset},
                                  predating={"run": selection.run})  # rows from before "run": the file's own
    if not todo:
        return

    info = dataset_info(args.dataset)
    source_classes = dataset_info(args.source_dataset).num_classes
    images, labels = load_arrays(args.dataset, args.data_root, "test")
    check_batch_size(args, len(labels))
    images = torch.as_tensor(images).to(device)  # once; every checkpoint's features are computed from it
    if args.mode == "xt":
        shared = normalised_images(images, info.mean, info.std, device).flatten(1)
    else:
        shared = torch.eye(info.num_classes, device=device)[torch.as_tensor(labels, device=device)]
    writer = util.make_writer(util.tensorboard_folder(run_folder))
    failed = []
    for group_start in range(0, len(todo), args.batch_ckpts):
        group = []
        for _, epoch, path in todo[group_start:group_start + args.batch_ckpts]:
            started = time.time()
            try:
                features = checkpoint_features(args, path, source_classes, images, info, device)
            except util.UserError as err:
                print(f"error: {err}", file=sys.stderr, flush=True)
                failed.append(epoch)
                continue
            group.append((epoch, path, features, time.time() - started))
        if group:
            estimate_group(args, selection.run, group, shared, device, results_path, writer, dataset_tag)
    writer.close()
    if failed:
        raise util.UserError(f"{len(failed)} of {len(todo)} checkpoint(s) could not be estimated "
                             f"(epochs {', '.join(map(str, failed))}, see above); no result rows for them")


def check_batch_size(args, rows):
    train_rows = mine.training_row_count(rows, args.eval_fraction)
    if args.batch_size > train_rows:
        raise util.UserError(f"--batch_size {args.batch_size} is larger than the {train_rows} rows of "
                             f"{args.dataset}'s evaluation split available for training the critic; "
                             f"lower --batch_size (or --eval_fraction)")


def checkpoint_features(args, path, source_classes, images, info, device):
    """T of one checkpoint: float32 [N, feat_dim] on the device; a UserError names a bad file."""
    model = build_model(args.model, source_classes)
    model.load_model(path)
    features = extract_features(model, images, info.mean, info.std, device, amp=args.amp)
    if not torch.isfinite(features).all():
        raise util.UserError(f"checkpoint {path} gives non-finite features on {args.dataset} "
                             f"(did its training diverge?); MINE needs finite T")
    return features


def estimate_group(args, run, group, shared, device, results_path, writer, dataset_tag):
    """One batched MINE run over the checkpoints of `group`; a line, a row and curves for each."""
    features = torch.stack([item[2] for item in group])
    a, b = (shared, features) if args.mode == "xt" else (features, shared)
    started = time.time()
    results = mine.estimate_mi_batched(a, b, iters=args.iter_num, lr=args.lr, batch_size=args.batch_size,
                                       hidden_size=args.hidden_size, seed=args.seed, amp=args.amp,
                                       eval_fraction=args.eval_fraction, early_stop=args.early_stop)
    critic_seconds = (time.time() - started) / len(group)
    name = NAMES[args.mode]
    for (epoch, path, _, feature_seconds), result in zip(group, results):
        print(f"{name} of {args.model} of {epoch}-th epoch is : {result.estimate}", flush=True)
        print(f"  {describe(result)}", flush=True)
        row = result_row(args, run, epoch, path, result, feature_seconds + critic_seconds, len(group), device)
        util.store_result(results_path, row, keys=("mode", "dataset", "epoch"))
        write_tensorboard(writer, f"{name}_{dataset_tag}", epoch, result)
    writer.flush()


def describe(result):
    diagnostics = result.diagnostics
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


def critic_settings(args):
    """What an estimate depends on besides its data: rows made with others do not compare."""
    return {"lr": args.lr, "iter_num": args.iter_num, "batch_size": args.batch_size, "hidden_size": args.hidden_size,
            "seed": args.seed, "amp": args.amp, "eval_fraction": args.eval_fraction, "early_stop": args.early_stop}


def recorded_settings(args, run):
    """The settings every row of a results file must share (util.checkpoints_to_do checks them)."""
    return {"run": run, "model": args.model, "source_dataset": args.source_dataset, **critic_settings(args)}


def estimate_row(result, seconds, device):
    """What one critic's run gives, for a results row."""
    return {"estimate": result.estimate, "heldout_estimate": result.heldout_estimate,
            "status": result.diagnostics["status"], "iterations": result.iterations,
            "seconds": round(seconds, 3), "device": str(device), "diagnostics": result.diagnostics}


def result_row(args, run, epoch, path, result, seconds, group_size, device):
    return {**recorded_settings(args, run), **estimate_row(result, seconds, device),
            "epoch": epoch, "checkpoint": Path(path).name, "mode": args.mode, "dataset": args.dataset,
            "batch_ckpts": group_size, "skipped_steps": result.skipped_steps, "heldout_curve": result.heldout_curve}


def write_tensorboard(writer, tag, epoch, result):
    writer.add_scalar(f"mine/{tag}", result.estimate, epoch)
    if result.heldout_estimate is not None:
        writer.add_scalar(f"mine_heldout/{tag}", result.heldout_estimate, epoch)
    for step, bound, smoothed in curve_points(result):
        writer.add_scalar(f"mine_curve/epoch_{epoch}/{tag}_bound", bound, step)
        writer.add_scalar(f"mine_curve/epoch_{epoch}/{tag}_smoothed", smoothed, step)
    for step, heldout in result.heldout_curve:
        writer.add_scalar(f"mine_curve/epoch_{epoch}/{tag}_heldout", heldout, step)


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


# --------------------------------------------------------------------------- calibration

def calibrate(args, device):
    """Correlated Gaussians of known MI, all estimated in one batched run; prints estimate vs truth."""
    rhos, truths = calibration_problems(args)
    if args.results:  # refused now rather than after the estimates: a foreign or unwritable file
        util.read_results(args.results)
        util.check_writable(args.results)
    if args.batch_size > mine.training_row_count(args.calibrate_rows, args.eval_fraction):
        raise util.UserError(f"--batch_size {args.batch_size} is larger than the training rows of "
                             f"--calibrate_rows {args.calibrate_rows}; lower it or raise --calibrate_rows")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    pairs = [mine.correlated_gaussians(args.calibrate_rows, args.dim, rho, generator=generator, device=device)
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
            util.append_result(args.results, calibration_row(args, rho, truth, result, marks, at_marks,
                                                             seconds / len(results), device))


def calibration_row(args, rho, truth, result, marks, at_marks, seconds, device):
    return {**critic_settings(args), **estimate_row(result, seconds, device),
            "mode": "calibrate", "problem": "gaussian", "dim": args.dim, "rho": rho, "true_mi": truth,
            "rows": args.calibrate_rows, "estimate_at": dict(zip(map(str, marks), at_marks))}


def calibration_problems(args):
    """(rhos, true MIs) from --rho or --true_mi."""
    if (args.rho is None) == (args.true_mi is None):
        raise util.UserError("--calibrate gaussian needs exactly one of --rho or --true_mi")
    if args.rho is not None:
        if not all(-1 < rho < 1 for rho in args.rho):
            raise util.UserError(f"--rho values must lie strictly between -1 and 1, got {args.rho}")
        return args.rho, [mine.gaussian_mi(args.dim, rho) for rho in args.rho]
    return [mine.rho_for_mi(mi, args.dim) for mi in args.true_mi], args.true_mi


if __name__ == "__main__":
    util.run_main(main)
