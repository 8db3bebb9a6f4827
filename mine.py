"""MINE estimates of I(X;T) and I(T;Y) for every checkpoint of a run folder (SPEC 8).

    python mine.py --mode xt --model resnext32_16x4d --dataset cifar100 \
      --ckpt_path {folder} --lr 8e-5 --iter_num 1e+4 --start_epoch 2 --skip 2
    python mine.py --mode ty --model resnext32_16x4d --dataset cinic10 \
      --ckpt_path {folder} --lr 1e-5 --iter_num 2e+4 --start_epoch 2 --skip 2

X: the normalised evaluation images of --dataset, flattened; T: the checkpoint's pooled
penultimate features (eval mode); Y: one-hot labels. Per checkpoint: the reference's line
`I(X;T) of {model} of {epoch}-th epoch is : {value}`, a line of diagnostics, one JSON-lines
row in <run folder>/mine_<mode>_<dataset>.jsonl, and TensorBoard scalars
`mine/I(X;T)_<dataset>` (by source epoch) plus the per-iteration bound and its smoothed
value under `mine_curve/epoch_<E>/` in save/tensorboard/<run name>/. Checkpoints already
in the results file are skipped (--force to redo).

Two protocols (helper/mine/report.py says what each row holds):
  --protocol reference (default)  the paper's: the critic trains on every row and the estimate
                                  is the mean of its last 500 training-batch bounds; comparable
                                  with the paper, but with a wide critic mostly memorisation
  --protocol heldout              the critic trains on 80% of the rows and the estimate is its
                                  best smoothed DV bound on the other 20%, with a standard error;
                                  a lower bound that memorisation cannot raise
                                  (helper/mine/heldout.py); rows go to mine_<mode>_<dataset>_heldout.jsonl

    python mine.py --calibrate gaussian --dim 10 --true_mi 0.5 1 2 4 --protocol heldout --results cal.jsonl

estimates problems of known MI (gaussian, cubic, classes) with the same critic and settings
and prints estimate vs truth; bench/BENCHMARKS.md ("MINE: calibration ...") records such tables.
"""
import itertools
import time
from pathlib import Path

import torch

import util
from dataset import canonical_name, dataset_info, dataset_tag, load_arrays
from helper.mine import critic
from helper.features import features_of_checkpoints, normalised_images, raise_for_failures
from helper.mine.calibration import PROBLEMS, calibrate
from helper.mine.heldout import EVAL_EVERY, HELDOUT_FRACTION, PATIENCE
from helper.mine.report import PROTOCOLS, estimate, recorded_settings, report_checkpoint, results_file_name
from helper.results import add_selection_arguments, calibrate_or_measure, checkpoints_to_do, selected_checkpoints
from helper.run import tensorboard_writer
from models import model_name

# The README's settings, used when --lr / --iter_num are not given.
DEFAULT_LR = {"xt": 8e-5, "ty": 1e-5}
DEFAULT_ITERS = {"xt": 10000, "ty": 20000}
# Checkpoints per batched run. I(T;Y)'s critic has a small first layer, so fewer critics
# leave the GPU waiting on Python's dispatch; 8 measured 2.6x faster than 1 (BENCHMARKS.md).
DEFAULT_BATCH_CKPTS = {"xt": 4, "ty": 8}


def parse_option(argv=None):
    parser = util.ArgumentParser(description="MINE estimates of I(X;T) and I(T;Y) per checkpoint")
    add = parser.add_argument
    add("--mode", default="xt", choices=("xt", "ty"), help="xt: I(X;T), ty: I(T;Y)")
    add("--model", default="resnext32_16x4d", type=model_name)
    add("--dataset", default="cifar100", help="data set whose evaluation split is X and Y")
    add("--source_dataset", default="cifar100", help="data set the checkpoints were trained on (sets the class count)")
    add_selection_arguments(parser, "estimate", required=False)
    add("--lr", type=util.positive(float), default=None, help="critic Adam lr (default 8e-5 for xt, 1e-5 for ty)")
    add("--iter_num", type=util.positive(), default=None, help="critic iterations (default 1e4 for xt, 2e4 for ty)")
    add("--batch_size", type=util.positive(), default=5000, help="rows per joint and per marginal batch")
    add("--hidden_size", type=util.positive(), default=1024, help="width of the critic's three hidden layers")
    add("--seed", type=int, default=0, help="critic initialisation and batch draws")
    add("--amp", action="store_true", help="bf16 autocast for features and critic")
    add("--protocol", default="reference", choices=PROTOCOLS,
        help="reference: the paper's (the estimate is the bound on the training batches); heldout: the best "
             "smoothed bound on rows the critic never trains on, with a standard error (see README, MINE)")
    add("--eval_fraction", type=float, default=None,
        help=f"fraction of rows the critic never trains on: heldout protocol {HELDOUT_FRACTION} by default; "
             f"reference protocol 0 (train on all, as the reference), else their bound is reported as a diagnostic")
    add("--patience", type=util.positive(), default=None,
        help=f"heldout protocol: stop a critic once its smoothed held-out bound has not improved for this many "
             f"iterations (default {PATIENCE}); --iter_num is then the most it trains")
    add("--eval_every", type=util.positive(), default=None,
        help=f"heldout protocol: iterations between held-out evaluations (default {EVAL_EVERY})")
    add("--early_stop", action="store_true",
        help=f"reference protocol: stop a critic once its smoothed estimate (mean of {critic.AVERAGE_LAST} bounds) has "
             f"changed by less than {100 * critic.TOLERANCE:g}%% over {critic.TREND_SPAN * critic.AVERAGE_LAST} iterations, "
             f"at two checks {critic.AVERAGE_LAST} iterations apart")
    add("--batch_ckpts", type=util.positive(), default=None,
        help="checkpoints estimated together in one batched run (default 4 for xt, 8 for ty): a speed setting, "
             "the same estimates up to float rounding (each critic starts and samples as if alone); "
             "bench/BENCHMARKS.md times it")
    add("--calibrate", choices=PROBLEMS, default=None,
        help="estimate problems of known MI instead of checkpoints: gaussian (correlated Gaussians), cubic "
             "(the same with Y cubed: MI unchanged), classes (T determines the one-hot Y: MI = log classes)")
    add("--dim", type=util.positive(), default=1, help="--calibrate: dimension of X and of Y (classes: of T)")
    add("--rho", type=float, nargs="+", default=None, help="--calibrate gaussian/cubic: per-coordinate correlations")
    add("--true_mi", type=util.positive(float), nargs="+", default=None,
        help="--calibrate gaussian/cubic: true MI values (nats)")
    add("--classes", type=util.positive(), nargs="+", default=None,
        help="--calibrate classes: class counts (true MI log of each)")
    add("--calibrate_rows", type=util.positive(), default=10000,
        help="--calibrate: samples per problem (10000 = the size of CIFAR-100's test split)")
    args = parser.parse_args(argv)
    check_protocol_flags(parser, args)
    args.lr = args.lr or DEFAULT_LR[args.mode]
    args.iter_num = args.iter_num or DEFAULT_ITERS[args.mode]
    args.batch_ckpts = args.batch_ckpts or DEFAULT_BATCH_CKPTS[args.mode]
    return args


def check_protocol_flags(parser, args):
    """Each protocol's own flags, refused with the other; the protocol's defaults filled in."""
    if args.protocol == "reference":
        given = [flag for flag in ("patience", "eval_every") if getattr(args, flag) is not None]
        if given:
            parser.error(f"--{given[0]} belongs to --protocol heldout")
        args.eval_fraction = args.eval_fraction or 0.0
        if not 0 <= args.eval_fraction < 1:
            parser.error(f"--eval_fraction must be in [0, 1), got {args.eval_fraction}")
    else:
        if args.early_stop:
            parser.error("--early_stop belongs to --protocol reference (heldout stops with --patience)")
        args.eval_fraction = HELDOUT_FRACTION if args.eval_fraction is None else args.eval_fraction
        if not 0 < args.eval_fraction < 1:
            parser.error(f"--protocol heldout needs --eval_fraction in (0, 1), got {args.eval_fraction}")
        args.patience = args.patience or PATIENCE
        args.eval_every = args.eval_every or EVAL_EVERY


def main(argv=None):
    return calibrate_or_measure(parse_option(argv), calibrate, estimate_checkpoints)


# --------------------------------------------------------------------------- checkpoints

def estimate_checkpoints(args, device):
    selection = selected_checkpoints(args.ckpt_path, args.start_epoch, args.skip, args.shard)
    run_folder = selection.run_folder
    args.dataset, args.source_dataset = map(canonical_name, (args.dataset, args.source_dataset))
    tag = dataset_tag(args.dataset)
    results_path = Path(args.results or run_folder / results_file_name(args.mode, tag, args.protocol))
    # Rows from before "run" and "protocol" existed: the file's own run, the reference protocol.
    todo = checkpoints_to_do(selection, results_path, recorded_settings(args, selection.run), args.force,
                             match={"mode": args.mode, "dataset": args.dataset},
                             predating={"run": selection.run, "protocol": "reference"})
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
    writer = tensorboard_writer(run_folder)
    failed = []
    checkpoints = features_of_checkpoints(todo, failed, args.model, source_classes, images, info, device, args.amp)
    # Up to --batch_ckpts readable checkpoints at a time, their critics trained together.
    while group := [(epoch, path, features, time.time() - started)
                    for epoch, path, features, started in itertools.islice(checkpoints, args.batch_ckpts)]:
        estimate_group(args, selection.run, group, shared, device, results_path, writer, tag)
    writer.close()
    raise_for_failures(failed, len(todo), "estimated")


def check_batch_size(args, rows):
    train_rows = critic.training_row_count(rows, args.eval_fraction)
    if args.batch_size > train_rows:
        raise util.UserError(f"--batch_size {args.batch_size} is larger than the {train_rows} rows of "
                             f"{args.dataset}'s evaluation split available for training the critic; "
                             f"lower --batch_size (or --eval_fraction)")


def estimate_group(args, run, group, shared, device, results_path, writer, tag):
    """One batched MINE run over the checkpoints of `group`; a line, a row and curves for each."""
    features = torch.stack([item[2] for item in group])
    a, b = (shared, features) if args.mode == "xt" else (features, shared)
    started = time.time()
    results = estimate(args, a, b)
    critic_seconds = (time.time() - started) / len(group)
    for (epoch, path, _, feature_seconds), result in zip(group, results):
        report_checkpoint(args, run, epoch, path, result, feature_seconds + critic_seconds, len(group), device,
                          results_path, writer, tag)


if __name__ == "__main__":
    util.run_main(main)
