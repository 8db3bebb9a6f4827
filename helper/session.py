"""What both training scripts set up before the first epoch: seed, device (one process or
one of several under torchrun), numeric backends, the model, the loaders, the optimizer
and the step that applies it.
"""
import os
import sys

import torch

import util
from dataset import build_loaders, dataset_info
from helper.loops import fit
from helper.steps import Precision, build_step, configure_backends
from models import build_model


class TrainingSession:
    """Built from the parsed options of train_vanilla.py / train_ctc.py (util.add_training_arguments)
    and the name of the run folder under save/model/ they give."""

    def __init__(self, opts, run_name):
        self.opts = opts
        self.rank, self.world_size, self.device = init_distributed(opts.device)
        util.set_seed(opts.seed)
        configure_backends(self.device, opts.cudnn_benchmark, opts.tf32)
        util.check_bf16(self.device, opts.amp == "bf16")
        self.precision = Precision(self.device, opts.amp, opts.channels_last)
        if opts.batch_size % self.world_size:
            raise util.UserError(f"--batch_size {opts.batch_size} must be divisible by the "
                                 f"{self.world_size} training processes")
        # Under torchrun --batch_size stays the global batch, as with the reference's
        # DataParallel: each process takes an equal share of it.
        self.batch_size = opts.batch_size // self.world_size
        # Checked before the model is built or any data read: a wrong --resume, or a run already finished.
        self.run = util.TrainingRun(util.model_folder(run_name), opts.model, vars(opts), resume=opts.resume,
                                    writes=self.is_main)
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
        if self.world_size == 1:
            return self.model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

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
