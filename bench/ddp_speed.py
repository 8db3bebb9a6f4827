"""Time per global step with one training process and with N (DistributedDataParallel, as under
torchrun) at the same global batch: train_vanilla.py's step and train_ctc.py's two stages (the
memory all-gathers and Z's all-reduce included). The one-process step is the baseline, timed in
this process; N processes are spawned here (gloo on the CPU, nccl and one GPU each on CUDA).

    python bench/ddp_speed.py --device cpu --model resnet8 --n_train 2000 --steps 20 --nce_k 1024
    python bench/ddp_speed.py --device cuda --model resnext32_16x4d --procs 1 2   # one GPU per process

On the CPU every process runs `--threads` threads (default: the cores split between the
largest process count, so N processes use no more cores than there are). Data are random
CIFAR-100-shaped images on the device loader.
"""
import argparse
import os
import socket
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.train_speed import make_method, synthetic_data, time_steps  # noqa: E402
from dataset.common import CIFAR100_MEAN, CIFAR100_STD  # noqa: E402
from dataset.gpu import ContrastSampler, DeviceLoader  # noqa: E402
from helper.distributed import data_parallel  # noqa: E402
from helper.precision import Precision, configure_backends  # noqa: E402
from models import build_model  # noqa: E402

KINDS = ("vanilla", "ctc1", "ctc2")


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet8")
    parser.add_argument("--batch_size", type=int, default=64, help="the global batch")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts (the first: baseline)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--n_train", type=int, default=2000)
    parser.add_argument("--nce_k", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per process")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    args.threads = args.threads or max(1, os.cpu_count() // max(args.procs))
    return args


def ms_per_step(kind, rank, world, args):
    """ms per global step of `kind`, as process `rank` of `world` measures it."""
    device = torch.device("cuda", rank) if args.device == "cuda" else torch.device("cpu")
    torch.manual_seed(0)
    precision = Precision(device)
    model = build_model(args.model, 100).to(device).train()
    images, labels = synthetic_data(args.n_train)
    contrast = ContrastSampler(labels, args.nce_k, "exact", device) if kind == "ctc2" else None
    loader = DeviceLoader(images, labels, args.batch_size // world, CIFAR100_MEAN, CIFAR100_STD, device,
                          drop_last=True, with_index=kind != "vanilla", contrast=contrast, shard=(rank, world))
    distribute = lambda module, sync_buffers=True: data_parallel(module, device, sync_buffers)  # noqa: E731
    method, epoch = make_method(kind, model, loader, len(labels), precision, args, distribute)
    # the step time is the slowest process's
    return time_steps(kind, model, loader, method, epoch, precision, args,
                      after=torch.distributed.barrier if world > 1 else None)


def _process(rank, world, port, args, results):
    torch.set_num_threads(args.threads)
    backend = "nccl" if args.device == "cuda" else "gloo"
    if args.device == "cuda":
        torch.cuda.set_device(rank)
    configure_backends(torch.device(args.device))
    torch.distributed.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for kind in KINDS:
            milliseconds = ms_per_step(kind, rank, world, args)
            if rank == 0:
                results[kind] = milliseconds
    finally:
        torch.distributed.destroy_process_group()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    args = parse()
    configure_backends(torch.device(args.device))
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} threads per process"
    print(f"# {device_name}, torch {torch.__version__}, {args.model}, global batch {args.batch_size}, "
          f"K {args.nce_k}, {args.n_train} images, {args.steps} timed steps after {args.warmup}")
    print("| step | processes | ms per global step | speed-up vs 1 process |\n|---|---|---|---|")
    baseline = {}
    for world in args.procs:
        if world == 1:
            torch.set_num_threads(args.threads)
            times = {kind: ms_per_step(kind, 0, 1, args) for kind in KINDS}
        else:
            times = mp.Manager().dict()
            mp.spawn(_process, args=(world, _free_port(), args, times), nprocs=world)
        for kind in KINDS:
            baseline.setdefault(kind, times[kind])
            print(f"| {kind} | {world} | {times[kind]:.1f} | {baseline[kind] / times[kind]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
