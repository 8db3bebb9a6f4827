"""Train a CIFAR model with Contrastive Temporal Coding (SPEC 6).

    python train_ctc.py --epochs 300 --dataset cifar100 --model resnext32_16x4d \
      --momentum 0.9 --learning_rate 0.05 --batch_size 64 --weight_decay 0.0005 --weight_decay_coef 2.0 \
      --stage_two_epoch 200 -a 0.5 -b 1.0 --instance_t 0.10 --instance_m 0.9 --nce_t 0.10 --nce_m 0.9 \
      --update_memory_bank --save_freq 2 --note ctc

Stage 1 (epochs 1..S): CE + alpha * instance discrimination against a memory bank.
Stage 2: CE + beta * NCE between the model and a frozen copy of itself from epoch S.
Checkpoints go to save/model/{model}_{dataset}_a:{alpha}_b:{beta}_{note}/. Several GPUs:
torchrun --nproc_per_node N train_ctc.py ... (--batch_size stays the global batch; every
process updates its memories with the whole global batch).
"""
import util
from dataset import smallest_contrast_pool, train_labels
from helper.loops import CTCMethod
from helper.run import ctc_run_name
from helper.session import TrainingSession, add_training_arguments


def parse_option(argv=None):
    parser = util.ArgumentParser(description="contrastive temporal coding")
    add_training_arguments(parser, epochs=300, note="ctc")
    add = parser.add_argument
    add("--stage_two_epoch", type=util.positive(), default=200, help="S: last epoch of stage 1")
    add("--stage_two_decay_rate", type=float, default=0.1,
        help="stage 2 restarts its cosine at learning_rate * this")
    add("--weight_decay_coef", type=float, default=2.0, help="stage-1 weight decay = weight_decay * this")
    add("-a", "--alpha", type=float, default=0.5, help="weight of the stage-1 instance loss")
    add("-b", "--beta", type=float, default=1.0, help="weight of the stage-2 NCE loss")
    add("--instance_t", type=float, default=0.1, help="stage-1 temperature")
    add("--instance_m", type=float, default=0.9, help="stage-1 memory momentum")
    add("--instance_dim", type=util.positive(), default=128, help="stage-1 projection size")
    add("--nce_t", type=float, default=0.1, help="stage-2 temperature")
    add("--nce_m", type=float, default=0.9, help="stage-2 memory momentum")
    add("--nce_k", type=util.positive(), default=16384, help="negatives per sample")
    add("--contrast_feat_dim", type=util.positive(), default=128, help="stage-2 embedding size")
    add("--mode", default="exact", choices=["exact", "relax"],
        help="positive: the sample itself (exact) or a random sample of its class (relax)")
    add("--update_memory_bank", action="store_true",
        help="before stage 2, fill both contrast memories from the info bank in one pass")
    add("--train_projector", action="store_true",
        help="also train the stage-1 projector (the reference leaves it at its random init)")
    args = parser.parse_args(argv)
    if args.stage_two_epoch >= args.epochs:
        parser.error(f"--stage_two_epoch ({args.stage_two_epoch}) must be smaller than --epochs ({args.epochs})")
    return args


def run_name(args):
    """The run folder's name under save/model/ (SPEC 2); scripts/run_paper.sh asks for it too."""
    return ctc_run_name(args.model, args.dataset, args.alpha, args.beta, args.note)


def warn_if_negatives_repeat(labels, nce_k):
    """SPEC 4 draws negatives without replacement only when K is smaller than a class's
    other-class pool; say so at the start rather than let it pass unnoticed."""
    pool, label = smallest_contrast_pool(labels)
    if nce_k > pool:
        print(f"warning: --nce_k {nce_k} exceeds the {pool} training images outside class {label} (the smallest "
              f"pool of negatives): negatives of that class's samples are drawn with repetition", flush=True)


def main(argv=None):
    args = parse_option(argv)
    session = TrainingSession(args, run_name(args))
    if session.finished:
        return

    def make_loader(variant):
        return session.loaders(variant, args.nce_k, args.mode)[0]

    # The training set is read once for stage 1 here; stage 2's loader is built when it starts.
    train_loader, test_loader, n_data = session.loaders("instance")
    warn_if_negatives_repeat(train_labels(train_loader), args.nce_k)
    method = CTCMethod(session.model, make_loader, n_data, args, session.precision, {"instance": train_loader},
                       distribute=session.distribute)
    step = session.step(method.trainable_parameters())
    session.train(method, step, test_loader)


if __name__ == "__main__":
    util.run_main(main)
