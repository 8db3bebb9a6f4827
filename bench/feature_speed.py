"""Feature extraction with BatchNorm folded into the convolutions vs the model's own forward pass.

    python bench/feature_speed.py                                   # CPU-sized
    python bench/feature_speed.py --images 90000 --device cuda \
        --models resnext32_16x4d resnet32x4 wrn_40_2 ResNet18       # a GPU, CINIC-10-sized split

`helper.features.feature_extractor` builds a traced copy of the model with each BatchNorm
that follows a convolution folded into it. This bench separates the two costs that decide
whether that pays: building the copy (once per checkpoint and split) and the forward
passes over the images. The two forward paths run alternately, --rounds times each, so a
drift in clock or load hits both; the medians are compared, in the same process.
"""
import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import seconds  # noqa: E402
import util  # noqa: E402
from helper.features import DEFAULT_BATCH, PooledFeatures, feature_extractor  # noqa: E402
from helper.precision import autocast, configure_backends, in_channels_last  # noqa: E402
from models import build_model  # noqa: E402


def parse_option():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet8", "resnext32_16x4d"])
    parser.add_argument("--images", type=int, default=2048, help="images pushed through per timing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    return parser.parse_args()


def timed(device, work):
    return seconds(work, device)


@torch.no_grad()
def forward_all(module, images, amp):
    for start in range(0, len(images), DEFAULT_BATCH):
        with autocast(images.device, amp):
            module(in_channels_last(images[start:start + DEFAULT_BATCH], amp))


def main():
    args = parse_option()
    device = util.pick_device(args.device)
    configure_backends(device)
    images = torch.randn(args.images, 3, 32, 32, device=device)
    print(f"{args.images} images 32x32, batch {DEFAULT_BATCH}, {args.rounds} rounds, device {device}, "
          f"torch {torch.__version__}")
    print(f"{'model':<18}{'precision':<10}{'build s':>9}{'own s':>9}{'folded s':>10}{'forward speed-up':>18}"
          f"{'break-even images':>19}")
    for name in args.models:
        for amp in (False, True):
            model = in_channels_last(build_model(name, 100).to(device).eval(), amp)
            own = PooledFeatures(model)
            holder = {}
            builds = [timed(device, lambda: holder.update(folded=feature_extractor(model, amp, fold=True)))
                      for _ in range(args.rounds)]
            folded = holder["folded"]
            forward_all(own, images[:DEFAULT_BATCH], amp)  # warm-up: cuDNN autotuning, allocator
            forward_all(folded, images[:DEFAULT_BATCH], amp)
            own_s, folded_s = [], []
            for _ in range(args.rounds):
                own_s.append(timed(device, lambda: forward_all(own, images, amp)))
                folded_s.append(timed(device, lambda: forward_all(folded, images, amp)))
            build, own_t, folded_t = map(statistics.median, (builds, own_s, folded_s))
            saved_per_image = (own_t - folded_t) / args.images
            break_even = f"{build / saved_per_image:,.0f}" if saved_per_image > 0 else "never"
            print(f"{name:<18}{'bf16' if amp else 'fp32':<10}{build:>9.3f}{own_t:>9.3f}{folded_t:>10.3f}"
                  f"{own_t / folded_t:>17.2f}x{break_even:>19}")


if __name__ == "__main__":
    main()
