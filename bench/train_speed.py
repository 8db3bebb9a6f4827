"""Train-step speed: the plain path (DataLoader + PIL transforms + eager step, the reference's
way) against the device loader, CUDA-graph replay, bf16 and channels_last, same model, batch
and process. Prints ms/step, s/epoch and the ratio to the plain path, and a parity line
(graphed vs eager parameters after the same steps).

    python bench/train_speed.py                          # GPU: resnext32_16x4d, batch 64, CIFAR-100 sizes
    python bench/train_speed.py --models resnext32_16x4d wrn_28_4 ResNet18 ShuffleV2 --ctc
    python bench/train_speed.py --device cpu --models resnet8 --steps 20 --n_train 2000   # CPU, tiny

Data are random uint8 images of CIFAR-100's shape: speed does not depend on pixel values.
"""
import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import seconds  # noqa: E402
from dataset.arrays import ArrayDataset, ContrastIndexSampler, make_transform  # noqa: E402
from dataset.common import CIFAR100_MEAN, CIFAR100_STD  # noqa: E402
from dataset.gpu import ContrastSampler, DeviceLoader  # noqa: E402
from helper.loops import CrossEntropyMethod, CTCMethod  # noqa: E402
from helper.precision import Precision, configure_backends  # noqa: E402
from helper.steps import build_step  # noqa: E402
from models import build_model  # noqa: E402


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnext32_16x4d"])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (graph capture included)")
    parser.add_argument("--n_train", type=int, default=50000)
    parser.add_argument("--num_workers", type=int, default=8, help="DataLoader workers of the plain path")
    parser.add_argument("--nce_k", type=int, default=16384)
    parser.add_argument("--ctc", action="store_true", help="also time CTC stage 1 and stage 2 steps")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args()


def synthetic_data(n, num_classes=100, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, num_classes, n).astype(np.int64)


def plain_loader(images, labels, args, variant):
    contrast = ContrastIndexSampler(labels, args.nce_k, "exact") if variant == "ctc" else None
    dataset = ArrayDataset(images, labels, make_transform(True, "vanilla", CIFAR100_MEAN, CIFAR100_STD), variant, contrast)
    return torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                       num_workers=args.num_workers, pin_memory=args.device != "cpu",
                                       persistent_workers=args.num_workers > 0)


def device_loader(images, labels, args, variant):
    contrast = ContrastSampler(labels, args.nce_k, "exact", args.device) if variant == "ctc" else None
    return DeviceLoader(images, labels, args.batch_size, CIFAR100_MEAN, CIFAR100_STD, args.device, train=True,
                        drop_last=True, with_index=variant != "plain", contrast=contrast)


def make_method(kind, model, loader, n_data, precision, args, distribute=None):
    """(training method, an epoch of its stage); `distribute` as TrainingSession.distribute."""
    if kind == "vanilla":
        return CrossEntropyMethod(distribute(model) if distribute else model, loader, 0.05, 5e-4, 240, 0.1), 1
    opts = SimpleNamespace(instance_dim=128, instance_t=0.1, instance_m=0.9, nce_k=args.nce_k, contrast_feat_dim=128,
                           nce_t=0.1, nce_m=0.9, train_projector=False, alpha=0.5, beta=1.0, stage_two_epoch=1,
                           epochs=2, learning_rate=0.05, stage_two_decay_rate=0.1, weight_decay=5e-4,
                           weight_decay_coef=2.0, update_memory_bank=False)
    method = CTCMethod(model, lambda variant: loader, n_data, opts, precision, distribute=distribute)
    if kind == "ctc2":
        method.end_epoch(1)   # freezes the info bank, as at the end of stage 1
        return method, 2
    return method, 1


def time_variant(model_name, kind, loader_kind, amp, channels_last, cuda_graph, data, args):
    """ms per step of one configuration (fresh model, same data)."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    precision = Precision(device, amp, channels_last)
    model = precision.prepare_model(build_model(model_name, 100).to(device)).train()
    variant = {"vanilla": "plain", "ctc1": "instance", "ctc2": "ctc"}[kind]
    loader = (plain_loader if loader_kind == "torch" else device_loader)(*data, args, variant)
    method, epoch = make_method(kind, model, loader, len(data[1]), precision, args)
    return time_steps(kind, model, loader, method, epoch, precision, args, cuda_graph)


def time_steps(kind, model, loader, method, epoch, precision, args, cuda_graph=False, after=None):
    """ms per step of `method` on `loader`'s batches (SGD as the training scripts use it),
    `args.steps` timed after `args.warmup` untimed; `after()` closes the timed part."""
    params = list(model.parameters()) if kind == "vanilla" else method.trainable_parameters()
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    step = build_step(optimizer, precision, loader.batch_size, cuda_graph)
    method.begin_epoch(epoch)
    step.begin_epoch(method.loss, 0.05, 5e-4, method.stage)
    batches = iter(_forever(loader))
    for _ in range(args.warmup):
        step(precision.prepare(next(batches)))

    def steps():
        for _ in range(args.steps):
            step(precision.prepare(next(batches)))
        if after is not None:
            after()
    return seconds(steps, precision.device) / args.steps * 1000


def _forever(loader):
    while True:
        yield from loader


def graph_parity(model_name, data, args, steps=5):
    """Max relative parameter difference after the same `steps` batches: eager vs eager (the
    run-to-run noise of cuDNN's autotuned kernels) and eager vs graph. Graph replay computes
    the same thing when the second is no larger than the first.
    """
    eager, again, graphed = (_train_params(model_name, data, args, steps, cuda_graph)
                             for cuda_graph in (False, False, True))

    def relative(a, b):
        return ((a - b).abs().max() / a.abs().max()).item()
    return relative(eager, again), relative(eager, graphed)


def _train_params(model_name, data, args, steps, cuda_graph):
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(model_name, 100).to(device).train()
    loader = DeviceLoader(*data, args.batch_size, CIFAR100_MEAN, CIFAR100_STD, device, drop_last=True,
                          generator=torch.Generator(device).manual_seed(1))
    method = CrossEntropyMethod(model, loader, 0.01, 5e-4, 240, 0.1)
    step = build_step(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4),
                      Precision(device), args.batch_size, cuda_graph)
    step.begin_epoch(method.loss, 0.01, 5e-4)
    for _, batch in zip(range(steps), loader):
        step(batch)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def main():
    args = parse()
    device = torch.device(args.device)
    configure_backends(device)
    data = synthetic_data(args.n_train)
    gpu = device.type == "cuda"
    print(f"# {torch.cuda.get_device_name(device) if gpu else 'CPU'}, torch {torch.__version__}, "
          f"batch {args.batch_size}, {args.steps} timed steps, {os.cpu_count()} CPU cores")
    variants = [("plain: DataLoader + eager fp32", "torch", "none", False, False),
                ("device loader + eager fp32", "gpu", "none", False, False),
                ("device loader + eager bf16 + channels_last", "gpu", "bf16", True, False)]
    if gpu:
        variants += [("device loader + CUDA graph fp32", "gpu", "none", False, True),
                     ("device loader + CUDA graph bf16 + channels_last", "gpu", "bf16", True, True)]
    kinds = ["vanilla"] + (["ctc1", "ctc2"] if args.ctc else [])
    steps_per_epoch = args.n_train // args.batch_size
    print("| model | step | variant | ms/step | s/epoch | speed-up vs plain |\n|---|---|---|---|---|---|")
    for model_name in args.models:
        for kind in kinds:
            baseline = None
            for label, loader_kind, amp, channels_last, cuda_graph in variants:
                ms = time_variant(model_name, kind, loader_kind, amp, channels_last, cuda_graph, data, args)
                baseline = baseline or ms
                print(f"| {model_name} | {kind} | {label} | {ms:.2f} | {ms * steps_per_epoch / 1000:.1f} | "
                      f"{baseline / ms:.2f}x |", flush=True)
        if gpu:
            eager, graphed = graph_parity(model_name, data, args)
            print(f"parity {model_name}: max relative parameter difference after 5 steps: "
                  f"eager vs eager {eager:.1e}, eager vs graph {graphed:.1e}", flush=True)


if __name__ == "__main__":
    main()
