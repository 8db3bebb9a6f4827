"""What both training scripts share before the first epoch: their common flags, seed,
device (one process or one of several under torchrun), numeric backends, the run folder,
the model, the loaders, the optimizer and the step that applies it.
"""
import argparse
import functools
import os
import sys

import torch

import util
from dataset import build_loaders, dataset_info
from helper.distributed import data_parallel
from helper.loops import fit
from helper.precision import Precision, configure_backends
from helper.run import TrainingRun, model_folder
from helper.steps import build_step
from models import build_model, model_name

# Titles of the argument groups whose flags say how a run executes, not what it computes:
# a resumed run may change them (TrainingRun); every other flag must stay as it started.
EXECUTION_TITLE = "execution (may change when a run is resumed)"
SPEED_TITLE = "speed (none of these changes what is computed beyond float noise)"


def add_training_arguments(parser, epochs, note):
    """Flags shared by train_vanilla.py and train_ctc.py (SPEC 1 and 5 defaults)."""
    add = parser.add_argument
    execution = parser.add_argument_group(EXECUTION_TITLE)
    execution.add_argument("--print_freq", type=util.positive(), default=100, help="print every N steps")
    execution.add_argument("--save_freq", type=util.positive(), default=40, help="write ckpt_epoch_E.pth every N epochs")
    execution.add_argument("--num_workers", type=int, default=8, help="DataLoader worker processes")
    execution.add_argument("--data_root", default="./data")
    execution.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    execution.add_argument("--resume", action="store_true",
                           help="continue the run from {model}_last.pth in its folder")
    add("--batch_size", type=util.positive(), default=64)
    add("--epochs", type=util.positive(), default=epochs)
    add("--learning_rate", type=util.positive(float), default=0.05)
    add("--weight_decay", type=float, default=5e-4)
    add("--momentum", type=float, default=0.9)
    add("--model", default="resnext32_16x4d", type=model_name)
    add("--dataset", default="cifar100", help="cifar100, cifar10, cinic10, stl10 or folder:<path>")
    add("--aug", default="vanilla", choices=["vanilla", "none", "mine", "auto"],
        help="vanilla/none: crop+flip; mine: no augmentation; auto: AutoAugment + cutout")
    add("--note", "--notes", dest="note", default=note, help="suffix of the run folder name")
    add("--seed", type=int, default=0)
    speed = parser.add_argument_group(SPEED_TITLE)
    speed.add_argument("--loader", default="auto", choices=["auto", "gpu", "torch"],
                       help="gpu: data set kept on the device, augmented there; auto: gpu on CUDA when it fits")
    speed.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"], help="autocast precision")
    speed.add_argument("--channels_last", action="store_true", help="NHWC memory format for convolutions")
    speed.add_argument("--cuda_graph", action="store_true",
                       help="replay full-size train steps from a captured CUDA graph")
    speed.add_argument("--cudnn_benchmark", action=argparse.BooleanOptionalAction, default=True,
                       help="cuDNN autotuning (CUDA)")
    speed.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                       help="TF32 matmuls and convolutions on Ampere+ GPUs, as in the paper's environment")


@functools.cache
def execution_flags():
    """The options a resumed run may change: those add_training_arguments puts in its
    execution and speed groups."""
    parser = argparse.ArgumentParser()
    add_training_arguments(parser, epochs=1, note="")
    return frozenset(action.dest for group in parser._action_groups if group.title in (EXECUTION_TITLE, SPEED_TITLE)
                     for action in group._group_actions)


class TrainingSession:
    """Built from the parsed options of train_vanilla.py / train_ctc.py (add_training_arguments)
    and the name of the run folder under save/model/ they give."""

    def __init__(self, opts, run_name):
        self.opts = opts
        self.rank, self.world_size, self.device = init_distributed(opts.device)
        util.set_seed(opts.seed)
        configure_backends(self.device, opts.cudnn_benchmark, opts.tf32)
        self.precision = Precision(self.device, opts.amp, opts.channels_last)
        if opts.batch_size % self.world_size:
            raise util.UserError(f"--batch_size {opts.batch_size} must be divisible by the "
                                 f"{self.world_size} training processes")
        if opts.cuda_graph and self.world_size > 1:
            raise util.UserError("--cuda_graph trains in one process: under torchrun the gradient all-reduce "
                                 "(and train_ctc.py's memory all-gathers) would have to be captured in the graph, "
                                 "which this project does not do; drop --cuda_graph")
        # Under torchrun --batch_size stays the global batch, as with the reference's
        # DataParallel: each process takes an equal share of it.
        self.batch_size = opts.batch_size // self.world_size
        # Checked before the model is built or any data read: a wrong --resume, or a run already finished.
        self.run = TrainingRun(model_folder(run_name), opts.model, vars(opts), may_change=execution_flags(),
                               resume=opts.resume, writes=self.is_main)
        if self.finished:
            asked = "" if self.run.trained_epochs == opts.epochs else f" (--epochs {opts.epochs} asks for no more)"
            print(f"nothing to do: {self.run.folder} has trained {self.run.trained_epochs} epochs{asked}")
            self.close()
            return
        num_classes = dataset_info(opts.dataset).num_classes
        self.model = self.precision.prepare_model(build_model(opts.model, num_classes).to(self.device))

    @property
    def finished(self):
        return self.run.finished

    @property
    def is_main(self):
        return self.rank == 0

    def loaders(self, variant="plain", nce_k=16384, mode="exact"):
        """(train_loader, test_loader, num_train); the train loader holds this process's share."""
        o = self.opts
        return build_loaders(o.dataset, o.data_root, self.batch_size, o.num_workers, aug=o.aug, variant=variant,
                             nce_k=nce_k, mode=mode, loader=o.loader, device=self.device,
                             shard=(self.rank, self.world_size))

    def trained_model(self):
        """The module the loss calls: the model itself, or its DistributedDataParallel wrapper."""
        return self.distribute(self.model)

    def distribute(self, module, sync_buffers=True):
        """helper.distributed.data_parallel on this process's device."""
        return data_parallel(module, self.device, sync_buffers)

    def step(self, parameters):
        """SGD over `parameters` (SPEC 5) and the step that applies it (eager or CUDA graph)."""
        o = self.opts
        optimizer = torch.optim.SGD(parameters, lr=o.learning_rate, momentum=o.momentum, weight_decay=o.weight_decay)
        try:
            return build_step(optimizer, self.precision, self.batch_size, o.cuda_graph)
        except ValueError as err:
            raise util.UserError(str(err)) from None

    def train(self, method, step, test_loader):
        """Train into the run folder (only the first process writes), then clean up."""
        o = self.opts
        self.run.open()
        fit(self.run, method, self.model, step, test_loader, o.epochs, o.save_freq, o.print_freq)
        self.run.close()
        self.close()

    def close(self):
        """Leave the process group under torchrun: after training, or when there is nothing to do."""
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_distributed(device_flag):
    """(rank, world size, device): under torchrun one process per device, else (0, 1, --device)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, util.pick_device(device_flag)
    local_rank = int(os.environ["LOCAL_RANK"])
    if device_flag != "cpu" and torch.cuda.is_available():
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank()
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # one process reports; the others would print the same lines
    return rank, world_size, device
