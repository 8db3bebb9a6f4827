"""Seconds and peak memory of one checkpoint's geometry.py work: helper/geometry against a plain version.

    python bench/geometry_speed.py                        # 10,000 x 512 features, 100 classes, 3 noise levels
    python bench/geometry_speed.py --rows 2000 --dim 64

Features of a trained network's shape (non-negative, as after a ReLU and pooling) are drawn
once. Each variant runs in a fresh process of its own (so that its peak resident memory is its
own) on the same features:

- ours: helper.geometry.measures.measures and helper.geometry.information.noisy_information (blocks
  of 1024 rows; two matrix products per block serve every noise level and both antithetic draws;
  rows sorted by class so a block's own class is one slice of columns);
- plain: the same estimates written directly: the whole N x N distance matrix at once
  (torch.cdist), and per noise level and draw the noisy-to-clean distances recomputed and
  masked log-sum-exps over the full matrix.

Prints the seconds of each (measures and information apart), the ratio, the peak resident
memory of each process, and the largest difference between the two estimates.
"""
import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from helper.geometry.information import ANTITHETIC, feature_scale, noisy_information  # noqa: E402
from helper.geometry.measures import measures  # noqa: E402


def data(rows, dim, classes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(rows) % classes
    means = torch.randn(classes, dim, generator=generator)
    features = (means[labels] + 2 * torch.randn(rows, dim, generator=generator)).relu()
    return features, labels


def plain_information(features, labels, noise_levels, seed=0):
    """The estimates of noisy_information, written without blocks or shared products."""
    t = features.float() - features.float().mean(0)
    n, dim = t.shape
    z = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    order = torch.argsort(labels, stable=True)  # the same draw for the same row as noisy_information
    t, z, labels = t[order], z[order], labels[order]
    scale = feature_scale(t)
    same = labels[:, None] == labels[None, :]
    log_prior = torch.log(torch.bincount(labels)[labels] / n)
    found = []
    for s in noise_levels:
        sigma = s * scale
        xt = ty = 0
        for sign in ANTITHETIC:
            u = t + sign * sigma * z
            squared = torch.cdist(u, t) ** 2
            e = -(squared - squared.diagonal()[:, None]) / (2 * sigma ** 2)
            everything = torch.logsumexp(e, 1)
            xt = xt + (math.log(n) - everything) / len(ANTITHETIC)
            ty = ty + (torch.logsumexp(e.masked_fill(~same, -math.inf), 1) - everything - log_prior) / len(ANTITHETIC)
        found.append({"noise": s, "i_xt": float(xt.double().mean()), "i_ty": float(ty.double().mean())})
    return found


def child(args):
    features, labels = data(args.rows, args.dim, args.classes)
    started = time.time()
    geometry = measures(features, labels)
    measured = time.time()
    if args.variant == "ours":
        information = [{"noise": r.noise, "i_xt": r.i_xt, "i_ty": r.i_ty}
                       for r in noisy_information(features, labels, args.noise)]
    else:
        information = plain_information(features, labels, args.noise)
    done = time.time()
    print(json.dumps({"measures_s": measured - started, "information_s": done - measured, "geometry": geometry,
                      "information": information, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--variant", choices=("ours", "plain"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        return child(args)
    print(f"{args.rows} x {args.dim} features, {args.classes} classes, noise {args.noise}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    found = {}
    for variant in ("ours", "plain"):
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--rows", str(args.rows), "--dim",
                              str(args.dim), "--classes", str(args.classes), "--noise", *map(str, args.noise)],
                             capture_output=True, text=True, check=True).stdout
        found[variant] = json.loads(out.strip().splitlines()[-1])
        f = found[variant]
        print(f"{variant:>5}: measures {f['measures_s']:.1f} s, information {f['information_s']:.1f} s, "
              f"peak resident memory {f['peak_rss_mb']:.0f} MB", flush=True)
    ours, plain = found["ours"], found["plain"]
    print(f"information: plain / ours = {plain['information_s'] / ours['information_s']:.2f}x time, "
          f"{plain['peak_rss_mb'] / ours['peak_rss_mb']:.2f}x peak memory")
    gap = max(abs(a[key] - b[key]) for a, b in zip(ours["information"], plain["information"]) for key in ("i_xt", "i_ty"))
    print(f"largest difference between the two estimates: {gap:.2e} nats")


if __name__ == "__main__":
    main()
