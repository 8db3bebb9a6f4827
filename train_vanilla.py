"""Train a CIFAR model with plain cross-entropy (SPEC 5).

    python train_vanilla.py --epochs 200 --dataset cifar100 --model resnext32_16x4d \
      --weight_decay 0.0005 --momentum 0.9 --learning_rate 0.05 --batch_size 64 --save_freq 2 --note vanilla

Checkpoints go to save/model/{model}_{dataset}_lr_{lr}_trial_{trial}_{note}/, TensorBoard
events to save/tensorboard/<same name>/.
"""
import argparse
import time

import torch
import torch.nn.functional as F

import util
from dataset import build_loaders, dataset_info
from helper.loops import NonFiniteLoss, StepOutput, train_epoch, validate
from models import build_model


def parse_option(argv=None):
    parser = argparse.ArgumentParser(description="plain cross-entropy training")
    add = parser.add_argument
    add("--print_freq", type=util.positive(), default=100, help="print every N steps")
    add("--save_freq", type=util.positive(), default=40, help="write ckpt_epoch_E.pth every N epochs")
    add("--batch_size", type=util.positive(), default=64)
    add("--num_workers", type=int, default=8, help="DataLoader worker processes")
    add("--epochs", type=util.positive(), default=240)
    add("--learning_rate", type=util.positive(float), default=0.05)
    add("--min_lr_scale", type=float, default=0.1, help="cosine floor, as a fraction of the base lr")
    add("--weight_decay", type=float, default=5e-4)
    add("--momentum", type=float, default=0.9)
    add("--model", default="resnext32_16x4d")
    add("--dataset", default="cifar100", help="cifar100, cifar10, cinic10, stl10 or folder:<path>")
    add("--aug", default="vanilla", choices=["vanilla", "none", "mine", "auto"],
        help="vanilla/none: crop+flip; mine: no augmentation; auto: AutoAugment + cutout")
    add("-t", "--trial", default="0", help="trial id, part of the run folder name")
    add("--note", "--notes", dest="note", default="exp", help="suffix of the run folder name")
    add("--data_root", default="./data")
    add("--seed", type=int, default=0)
    add("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    add("--resume", action="store_true", help="continue the run from {model}_last.pth in its folder")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_option(argv)
    util.set_seed(args.seed)
    device = util.pick_device(args.device)
    num_classes = dataset_info(args.dataset).num_classes
    model = build_model(args.model, num_classes).to(device)
    train_loader, test_loader, _ = build_loaders(
        args.dataset, args.data_root, args.batch_size, args.num_workers, aug=args.aug, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate,
                                momentum=args.momentum, weight_decay=args.weight_decay)

    name = util.vanilla_run_name(args.model, args.dataset, args.learning_rate, args.trial, args.note)
    run = util.TrainingRun(util.model_folder(name), args.model, vars(args), resume=args.resume)
    best_acc = 0.0
    if run.resume_state:
        state = run.resume_state
        model.load_model(state)
        optimizer.load_state_dict(state["optimizer"])
        best_acc = state["best_acc"]
        util.set_rng_state(state["rng"])
        print(f"==> resuming {run.folder} after epoch {state['epoch']}")

    def cross_entropy(batch):
        images, target = batch[:2]
        logits = model(images)
        return StepOutput(F.cross_entropy(logits, target), logits)

    for epoch in range(run.start_epoch, args.epochs + 1):
        lr = util.vanilla_lr(epoch, args.learning_rate, args.epochs, args.min_lr_scale)
        util.set_lr(optimizer, lr)
        print("==> training...")
        started = time.time()
        try:
            train = train_epoch(epoch, train_loader, model, cross_entropy, optimizer, device, args.print_freq)
        except NonFiniteLoss as err:
            raise util.UserError(f"{err}; training stopped, the last good checkpoint is {run.last_path}")
        print(f"epoch {epoch}, total time {time.time() - started:.2f}")
        test = validate(test_loader, model, device, args.print_freq)
        is_best = test["top1"] > best_acc
        best_acc = max(best_acc, test["top1"])
        run.log_epoch(epoch, {"lr": lr, **{f"train_{k}": v for k, v in train.items()},
                              **{f"test_{k}": v for k, v in test.items()},
                              "seconds": round(time.time() - started, 3)})
        run.save(epoch, model.state_dict(), test["top1"], args.save_freq, is_best,
                 {"optimizer": optimizer.state_dict(), "best_acc": best_acc})
    print("best accuracy:", best_acc)
    run.close()


if __name__ == "__main__":
    util.run_main(main)
