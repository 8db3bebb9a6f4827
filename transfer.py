"""Linear transfer of every checkpoint of a run folder (SPEC 7).

    python transfer.py --source_dataset cifar100 --target_dataset cinic10 --model resnext32_16x4d \
      --ckpt_path {folder} --start_epoch 2 --skip 2

--protocol train_bn (default) reproduces the paper's numbers; adabn and frozen cache
features and take seconds per checkpoint (see helper/transfer.py and bench/BENCHMARKS.md).
One JSON-lines row per checkpoint goes to <run folder>/transfer_<target>_<protocol>.jsonl,
TensorBoard scalars `transfer/<target>_<protocol>` (best accuracy vs source epoch) to
save/tensorboard/<run name>/; under --amp both names end in `_amp`. Checkpoints already in
the results file for this target and protocol are skipped; a results file belongs to one
run folder.
"""
import sys
import time
from pathlib import Path

import util
from dataset import canonical_name, dataset_info, dataset_tag
from helper.precision import measurement_device
from helper.results import add_selection_arguments, checkpoints_to_do, selected_checkpoints, store_result
from helper.run import tensorboard_writer
from helper.transfer import PROTOCOLS, ProbeSettings, load_target, probe_name, run_probe
from models import build_model, model_name


def parse_option(argv=None):
    parser = util.ArgumentParser(description="per-checkpoint linear transfer")
    add = parser.add_argument
    add("--source_dataset", default="cifar100", help="data set the checkpoints were trained on (sets the class count)")
    add("--target_dataset", default="cinic10",
        help="cinic10, cifar10, cifar100, stl10, fashion-mnist, emnist or folder:<path>")
    add("--model", default="resnext32_16x4d", type=model_name)
    add_selection_arguments(parser, "evaluate")
    add("--epoch", type=util.positive(), default=30, help="target epochs of the linear probe")
    add("--lr", type=util.positive(float), default=0.4, help="probe learning rate (cosine to 0)")
    add("--wd", type=float, default=5e-4, help="probe weight decay")
    add("--batch", type=util.positive(), default=512, help="probe batch size")
    add("--protocol", default="train_bn", choices=PROTOCOLS,
        help="train_bn: the paper's (train-mode BatchNorm); adabn: BN re-estimated on the target, "
             "cached features; frozen: source BN statistics, cached features")
    add("--seed", type=int, default=0, help="initial Linear and batch order (the same for every checkpoint)")
    add("--amp", action="store_true", help="bf16 autocast and channels_last for the backbone's forward passes "
        "(faster on GPUs; the paper's numbers are fp32, see README)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_option(argv)
    device = measurement_device(args.device, args.amp)
    selection = selected_checkpoints(args.ckpt_path, args.start_epoch, args.skip, args.shard)
    run_folder = selection.run_folder
    args.source_dataset, args.target_dataset = map(canonical_name, (args.source_dataset, args.target_dataset))
    target_tag = dataset_tag(args.target_dataset)
    name = probe_name(target_tag, args.protocol, args.amp)
    results_path = Path(args.results or run_folder / f"transfer_{name}.jsonl")
    # A --results file may hold several targets and protocols: a row is one (target, protocol,
    # epoch), and only rows of this target and protocol count as done.
    probe = {"target_dataset": args.target_dataset, "protocol": args.protocol}
    recorded = {"run": selection.run, "model": args.model, "source_dataset": args.source_dataset, "lr": args.lr,
                "wd": args.wd, "batch": args.batch, "epochs": args.epoch, "seed": args.seed, "amp": args.amp}
    # Rows written before --amp existed were float32; before "run" existed, of the file's own run.
    todo = checkpoints_to_do(selection, results_path, recorded, args.force, match=probe,
                                  predating={"amp": False, "run": selection.run})
    if not todo:
        return

    source_classes = dataset_info(args.source_dataset).num_classes
    target = load_target(args.target_dataset, args.data_root, device)
    settings = ProbeSettings(epochs=args.epoch, lr=args.lr, weight_decay=args.wd, batch_size=args.batch)
    writer = tensorboard_writer(run_folder)
    scalar_tag = f"transfer/{name}"
    unreadable = []
    for j, epoch, path in todo:
        model = build_model(args.model, source_classes)
        try:
            model.load_model(path)
        except util.UserError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            unreadable.append(epoch)
            continue
        started = time.time()

        def report(target_epoch, best):
            print(f"Source Epoch: {j}, Target Epoch: {target_epoch}, Best Acc: {best}", flush=True)

        result = run_probe(model.to(device), target, args.protocol, settings, args.seed, on_epoch=report,
                           amp=args.amp)
        row = {**recorded, **probe, "epoch": epoch, "checkpoint": path.name, "momentum": settings.momentum,
               "best_acc": result.best_acc, "final_acc": result.final_acc, "acc_per_epoch": result.acc_per_epoch,
               "device": str(device), "seconds": round(time.time() - started, 3)}
        store_result(results_path, row, keys=(*probe, "epoch"))
        writer.add_scalar(scalar_tag, result.best_acc, epoch)
        writer.flush()
    writer.close()
    if unreadable:
        raise util.UserError(f"{len(unreadable)} of {len(todo)} checkpoint(s) could not be read "
                             f"(epochs {', '.join(map(str, unreadable))}, see above); no result rows for them")


if __name__ == "__main__":
    util.run_main(main)
