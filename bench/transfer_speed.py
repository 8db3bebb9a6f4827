"""Wall time of one checkpoint's linear transfer: train_bn vs adabn vs frozen vs a reference-style probe.

    python bench/transfer_speed.py                        # CPU-sized: resnet8, 4k + 4k images, 3 epochs
    python bench/transfer_speed.py --model resnext32_16x4d --train 90000 --test 90000 --epochs 30 \
        --device cuda [--amp]                             # the paper's setting on a CINIC-10-sized target

Data are random uint8 images (speed does not depend on their content). The three
protocols run in full. The reference-style probe -- a torch DataLoader with PIL
transforms and 2 workers, the network in train() mode, backward through the whole
network, only the Linear updated -- is timed for --reference_batches batches of each
split and extrapolated to the full per-checkpoint work, since at the paper's size it
takes ~19 minutes. Ratios are against that estimate and against train_bn, all measured
in this process. A second table splits the cached-feature probes into their parts (the
BatchNorm pass of adabn, feature extraction, the linear fit) and times the linear fit
written out against the same fit through autograd and torch.optim. BatchNorm folding in
feature extraction has its own bench, bench/feature_speed.py.
"""
import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import seconds, synchronize  # noqa: E402
import util  # noqa: E402
from dataset.arrays import ArrayDataset, make_transform  # noqa: E402
from helper.features import extract_features  # noqa: E402
from helper.precision import configure_backends  # noqa: E402
from helper.transfer import (PROTOCOLS, ProbeSettings, TargetData, adapt_batchnorm, new_classifier,  # noqa: E402
                             run_probe, train_linear_on_features, train_linear_plain)
from models import build_model  # noqa: E402

MEAN, STD = (0.47889522, 0.47227842, 0.43047404), (0.24205776, 0.23828046, 0.25874835)


def parse_option():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model", default="resnet8")
    add("--source_classes", type=int, default=100)
    add("--target_classes", type=int, default=10)
    add("--train", type=int, default=4000, help="target training images")
    add("--test", type=int, default=4000, help="target test images")
    add("--epochs", type=int, default=3, help="target epochs")
    add("--batch", type=int, default=512)
    add("--train_bn_epochs", type=int, default=None,
        help="time train_bn for this many epochs and scale to --epochs (its cost per epoch is constant)")
    add("--reference_batches", type=util.positive(), default=6, help="batches per split timed on the reference-style path")
    add("--num_workers", type=int, default=2, help="DataLoader workers of the reference-style path")
    add("--amp", action="store_true", help="also time every probe with transfer.py --amp (bf16, channels_last)")
    add("--device", default="auto")
    return parser.parse_args()


def random_target(args, device):
    generator = torch.Generator().manual_seed(0)

    def split(count):
        images = torch.randint(0, 256, (count, 32, 32, 3), dtype=torch.uint8, generator=generator)
        return images.to(device), torch.randint(0, args.target_classes, (count,), generator=generator).to(device)

    return TargetData("random", args.target_classes, MEAN, STD, *split(args.train), *split(args.test))


def time_protocol(args, target, protocol, device, amp=False):
    model = build_model(args.model, args.source_classes).to(device)
    epochs = args.train_bn_epochs if protocol == "train_bn" and args.train_bn_epochs else args.epochs
    settings = ProbeSettings(epochs=epochs, batch_size=args.batch)
    return seconds(lambda: run_probe(model, target, protocol, settings, amp=amp), device) * args.epochs / epochs


def reference_style_seconds(args, target, device):
    """Seconds per checkpoint of the reference's probe, extrapolated from a few timed batches per split."""
    model = build_model(args.model, args.source_classes).to(device)
    model.set_classifier(new_classifier(model.feat_dim, args.target_classes, 0).to(device))
    optimizer = torch.optim.SGD(model.get_classifier().parameters(), lr=0.4, momentum=0.9, weight_decay=5e-4)
    transform = make_transform(False, "mine", MEAN, STD)

    def loader(images, labels, shuffle):
        data = ArrayDataset(images.cpu().numpy(), labels.cpu().numpy(), transform)
        return torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=shuffle, num_workers=args.num_workers,
                                           pin_memory=device.type == "cuda")

    def train_step(images, labels):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def eval_step(images, labels):
        with torch.no_grad():
            (model(images).argmax(1) == labels).sum().item()

    seconds_per_image = {}
    for name, images, labels, step, mode in (("train", target.train_images, target.train_labels, train_step, True),
                                             ("test", target.test_images, target.test_labels, eval_step, False)):
        model.train(mode)
        timed = count = 0
        for number, (x, y) in enumerate(loader(images, labels, shuffle=mode)):
            if number > args.reference_batches:
                break
            started = time.perf_counter()
            step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            synchronize(device)
            if number > 0:  # the first batch also pays for starting the workers
                timed += time.perf_counter() - started
                count += len(y)
        seconds_per_image[name] = timed / count
    return args.epochs * (args.train * seconds_per_image["train"] + args.test * seconds_per_image["test"])


class Stopwatch(dict):
    """{part: seconds}; `with stopwatch(part):` times a part up to the device's last kernel."""

    def __init__(self, device):
        super().__init__()
        self.device = device

    @contextlib.contextmanager
    def __call__(self, part):
        synchronize(self.device)
        started = time.perf_counter()
        yield
        synchronize(self.device)
        self[part] = time.perf_counter() - started


def part_seconds(args, target, device, amp):
    """The parts of a cached-feature probe in adabn's order; returns ({part: seconds}, (train
    features, test features))."""
    model = build_model(args.model, args.source_classes).to(device)
    timed = Stopwatch(device)
    with timed("BatchNorm pass (adabn only)"):
        adapt_batchnorm(model, target.loader("train", args.batch, shuffle=True,
                                             generator=torch.Generator(device).manual_seed(0)), amp)
    with timed("features, train + test"):
        features = [extract_features(model, images, target.mean, target.std, device, amp=amp)
                    for images in (target.train_images, target.test_images)]
    return timed, features


def fit_seconds(args, target, device, features):
    """The linear fit on cached features, written out and through autograd + torch.optim."""
    settings = ProbeSettings(epochs=args.epochs, batch_size=args.batch)
    timed = Stopwatch(device)
    for part, fit in (("linear fit, autograd + torch.optim", train_linear_plain),
                      ("linear fit, written out", train_linear_on_features)):
        classifier = new_classifier(features[0].shape[1], target.num_classes, 0).to(device)
        with timed(part):
            fit(classifier, features[0], target.train_labels, features[1], target.test_labels, settings,
                torch.Generator(device).manual_seed(0))
    return timed


def main():
    args = parse_option()
    if min(args.train, args.test) <= args.batch:  # the first batch of each split is not timed
        raise SystemExit(f"the reference-style timing needs at least 2 batches of {args.batch} per split: "
                         f"raise --train/--test above --batch or lower --batch")
    device = util.pick_device(args.device)
    configure_backends(device)
    target = random_target(args, device)
    print(f"{args.model}, {args.train} + {args.test} images, {args.epochs} epochs, batch {args.batch}, "
          f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    precisions = [False, True] if args.amp else [False]
    for amp in precisions:
        time_protocol(args, target, "frozen", device, amp)  # warm-up: allocator, cudnn autotuning
    reference = reference_style_seconds(args, target, device)
    seconds = {probe_name(protocol, amp): time_protocol(args, target, protocol, device, amp)
               for amp in precisions for protocol in PROTOCOLS}
    # "speed vs X" = X's seconds / this probe's seconds: 2.0 means twice as fast as X.
    print(f"{'probe':<26}{'s/checkpoint':>14}{'speed vs reference':>20}{'speed vs train_bn':>19}")
    print(f"{'reference-style (est.)':<26}{reference:>14.2f}{1.0:>20.2f}{seconds['train_bn'] / reference:>19.2f}")
    for probe, probe_seconds in seconds.items():
        print(f"{probe:<26}{probe_seconds:>14.2f}{reference / probe_seconds:>20.1f}"
              f"{seconds['train_bn'] / probe_seconds:>19.1f}")
    for amp in precisions:
        parts, features = part_seconds(args, target, device, amp)
        if not amp:  # the fit reads float32 features either way
            fits = fit_seconds(args, target, device, features)
            parts.update(fits)
        print(f"\n{'part of a cached-feature probe' + (' (amp)' if amp else ''):<40}{'seconds':>10}")
        for part, part_time in parts.items():
            print(f"{part:<40}{part_time:>10.3f}")
    plain, written_out = fits.values()
    print(f"linear fit written out: {plain / written_out:.2f}x autograd + torch.optim")


def probe_name(protocol, amp):
    return f"{protocol}+amp" if amp else protocol


if __name__ == "__main__":
    main()
