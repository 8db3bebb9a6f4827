"""Train a CIFAR model with plain cross-entropy (SPEC 5).

    python train_vanilla.py --epochs 200 --dataset cifar100 --model resnext32_16x4d \
      --weight_decay 0.0005 --momentum 0.9 --learning_rate 0.05 --batch_size 64 --save_freq 2 --note vanilla

Checkpoints go to save/model/{model}_{dataset}_lr_{lr}_trial_{trial}_{note}/, TensorBoard
events to save/tensorboard/<same name>/.
"""
import argparse
import torch

import util
from dataset import build_loaders, dataset_info
from helper.loops import CrossEntropyMethod, fit
from models import build_model


def parse_option(argv=None):
    parser = argparse.ArgumentParser(description="plain cross-entropy training")
    util.add_training_arguments(parser, epochs=240, note="exp")
    parser.add_argument("--min_lr_scale", type=float, default=0.1,
                        help="cosine floor, as a fraction of the base lr")
    parser.add_argument("-t", "--trial", default="0", help="trial id, part of the run folder name")
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
    method = CrossEntropyMethod(model, train_loader, args.learning_rate, args.weight_decay,
                                args.epochs, args.min_lr_scale)
    fit(run, method, model, optimizer, test_loader, args.epochs, device, args.save_freq, args.print_freq)
    run.close()


if __name__ == "__main__":
    util.run_main(main)
