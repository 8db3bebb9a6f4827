"""Train a CIFAR model with plain cross-entropy (SPEC 5).

    python train_vanilla.py --epochs 200 --dataset cifar100 --model resnext32_16x4d \
      --weight_decay 0.0005 --momentum 0.9 --learning_rate 0.05 --batch_size 64 --save_freq 2 --note vanilla

Checkpoints go to save/model/{model}_{dataset}_lr_{lr}_trial_{trial}_{note}/, TensorBoard
events to save/tensorboard/<same name>/. Several GPUs: torchrun --nproc_per_node N train_vanilla.py ...
(--batch_size stays the global batch).
"""
import util
from helper.loops import CrossEntropyMethod
from helper.run import vanilla_run_name
from helper.session import TrainingSession, add_training_arguments


def parse_option(argv=None):
    parser = util.ArgumentParser(description="plain cross-entropy training")
    add_training_arguments(parser, epochs=240, note="exp")
    parser.add_argument("--min_lr_scale", type=float, default=0.1,
                        help="cosine floor, as a fraction of the base lr")
    parser.add_argument("-t", "--trial", default="0", help="trial id, part of the run folder name")
    return parser.parse_args(argv)


def run_name(args):
    """The run folder's name under save/model/ (SPEC 2); scripts/run_paper.sh asks for it too."""
    return vanilla_run_name(args.model, args.dataset, args.learning_rate, args.trial, args.note)


def main(argv=None):
    args = parse_option(argv)
    session = TrainingSession(args, run_name(args))
    if session.finished:
        return
    train_loader, test_loader, _ = session.loaders()
    step = session.step(session.model.parameters())
    method = CrossEntropyMethod(session.trained_model(), train_loader, args.learning_rate, args.weight_decay,
                                args.epochs, args.min_lr_scale)
    session.train(method, step, test_loader)


if __name__ == "__main__":
    util.run_main(main)
