"""The geometry of every checkpoint's features, and their information with noise added.

    python geometry.py --model resnext32_16x4d --dataset cifar100 --ckpt_path {folder} --start_epoch 2 --skip 2

T: the checkpoint's pooled penultimate features (eval mode) on the evaluation images of
--dataset (all of them, or --rows of them), Y: their labels. Per checkpoint, with no critic
trained (seconds, where MINE takes minutes):

- the features' geometry (helper/geometry/measures.py): effective rank, NC1, CDNV, class
  separation R^2 (all unchanged by a rescaling of the features) and the mean feature norm;
- I(X;T_s) and I(T_s;Y) for T_s = T + s * scale * Z at each --noise level s, scale the root mean
  square distance of a feature to the features' mean (helper/geometry/information.py): finite
  and well defined where a deterministic network's I(X;T) is not, with I(T_s;Y) <= I(X;T_s).

Two printed lines, one JSON-lines row in <run folder>/geometry_<dataset>.jsonl and TensorBoard
scalars geometry/... in save/tensorboard/<run name>/ (helper/geometry/report.py); checkpoints
already in the results file are skipped (--force to redo).

    python geometry.py --calibrate gaussian --dim 128 --rows 10000 --noise 4 8 16 --results cal.jsonl
    python geometry.py --calibrate classes --dim 16 --rows 2000 --classes 4 --separation 0 4 20 --noise 1 2

estimates problems of known answer (helper/geometry/calibration.py) with absolute noise;
bench/BENCHMARKS.md records the grid.
"""
import sys
import time
from pathlib import Path

import torch

import util
from dataset import canonical_name, dataset_info, dataset_tag, load_arrays
from helper.features import features_of_checkpoints, raise_for_failures
from helper.geometry.calibration import PROBLEMS, calibrate
from helper.geometry.information import noisy_information
from helper.geometry.measures import measures
from helper.geometry.report import describe, results_file_name, write_tensorboard
from helper.results import (add_selection_arguments, calibrate_or_measure, checkpoints_to_do, selected_checkpoints,
                            store_result)
from helper.run import tensorboard_writer
from models import model_name

# Noise per dimension in units of the features' scale (the root mean square distance to their
# mean). For features spread evenly over many dimensions I(X;T_s) is then about 1 / (2 s^2) nats
# (8, 2 and 0.5 here); features concentrated in fewer dimensions or in class clusters read lower.
DEFAULT_NOISE = (0.25, 0.5, 1.0)


def parse_option(argv=None):
    parser = util.ArgumentParser(description="geometry and noisy-feature information per checkpoint")
    add = parser.add_argument
    add("--model", default="resnext32_16x4d", type=model_name)
    add("--dataset", default="cifar100", help="data set whose evaluation split gives the features and labels")
    add("--source_dataset", default="cifar100", help="data set the checkpoints were trained on (sets the class count)")
    add_selection_arguments(parser, "measure", required=False)
    add("--rows", type=util.positive(), default=None,
        help="measure on this many evaluation images (a random subset fixed by --seed; default all); "
             "with --calibrate, the sample size (default 10000)")
    add("--noise", type=util.positive(float), nargs="+", default=list(DEFAULT_NOISE),
        help="noise levels s: per dimension, in units of the features' root mean square distance to their mean "
             "(with --calibrate: absolute)")
    add("--seed", type=int, default=0, help="the noise draws (shared by every checkpoint) and the --rows subset")
    add("--amp", action="store_true", help="bf16 autocast for the feature extraction")
    add("--calibrate", choices=PROBLEMS, default=None,
        help="estimate problems of known answer instead of checkpoints: gaussian (T ~ N(0, I_dim)), classes "
             "(Gaussian classes at --separation)")
    add("--dim", type=util.positive(), default=16, help="--calibrate: dimension of T")
    add("--classes", type=util.positive(), default=4, help="--calibrate classes: number of classes")
    add("--separation", type=float, nargs="+", default=[0.0, 4.0, 20.0],
        help="--calibrate classes: distance between class means, in units of the within-class spread")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_option(argv)
    if args.calibrate:
        args.rows = args.rows or 10000
    return calibrate_or_measure(args, calibrate, measure_checkpoints)


def measure_checkpoints(args, device):
    selection = selected_checkpoints(args.ckpt_path, args.start_epoch, args.skip, args.shard)
    args.dataset, args.source_dataset = map(canonical_name, (args.dataset, args.source_dataset))
    tag = dataset_tag(args.dataset)
    results_path = Path(args.results or selection.run_folder / results_file_name(tag))
    recorded = {"run": selection.run, "model": args.model, "source_dataset": args.source_dataset,
                "rows": args.rows, "noise": args.noise, "seed": args.seed, "amp": args.amp}
    todo = checkpoints_to_do(selection, results_path, recorded, args.force, match={"dataset": args.dataset})
    if not todo:
        return
    info = dataset_info(args.dataset)
    source_classes = dataset_info(args.source_dataset).num_classes
    images, labels = evaluation_rows(args, info)
    writer = tensorboard_writer(selection.run_folder)
    failed = []
    for epoch, path, features, started in features_of_checkpoints(todo, failed, args.model, source_classes, images,
                                                                  info, device, args.amp):
        try:
            information = noisy_information(features, labels.to(device), args.noise, seed=args.seed)
        except ValueError:  # --noise is positive, so the features have no spread to scale the noise by
            print(f"error: checkpoint {path} gives the same feature for every image measured (a dead or diverged "
                  f"network?): nothing to measure", file=sys.stderr, flush=True)
            failed.append(epoch)
            continue
        row = {**recorded, "dataset": args.dataset, "epoch": epoch, "checkpoint": path.name,
               "images": len(labels), **measures(features, labels.to(device)),
               "information": [level.row() for level in information],
               "device": str(device), "seconds": round(time.time() - started, 3)}
        store_result(results_path, row, keys=("dataset", "epoch"))
        print("\n".join(describe(args.model, epoch, args.dataset, row)), flush=True)
        write_tensorboard(writer, tag, epoch, row)
    writer.close()
    raise_for_failures(failed, len(todo), "measured")


def evaluation_rows(args, info):
    """(uint8 images, labels) of the evaluation split, or the --rows subset of them."""
    images, labels = load_arrays(args.dataset, args.data_root, "test")
    labels = torch.as_tensor(labels)
    if args.rows is not None:
        if args.rows < 2:
            raise util.UserError("--rows must be at least 2: one image has no spread to measure")
        if args.rows > len(labels):
            raise util.UserError(f"--rows {args.rows} is more than the {len(labels)} evaluation images of "
                                 f"{args.dataset}")
        chosen = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed))[:args.rows].sort()[0]
        images, labels = images[chosen.numpy()], labels[chosen]
    return images, labels


if __name__ == "__main__":
    util.run_main(main)
