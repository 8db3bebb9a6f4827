"""ms per MINE iteration: a reference-style loop vs helper/mine/critic.py, same shapes, same process.

    python bench/mine_speed.py                  # full I(X;T) shapes of CIFAR-100 (GPU)
    python bench/mine_speed.py --size ty        # I(T;Y) shapes: a far smaller first layer (GPU)
    python bench/mine_speed.py --size small     # reduced shapes that a CPU gets through

Reference style (SPEC 8): the data [N, 3072 + 512] lives on the host as numpy; each
iteration draws the joint and marginal batches with numpy, copies them to the device,
and keeps a moving average that is never detached; the bound is read back every
iteration. Ours: data on the device, device-side draws, a detached moving average,
no host sync per iteration, and optionally several checkpoints in one batched run.
Both run the same critic (3584 -> h -> h -> h -> 1) with Adam at the same batch size.
The held-out protocol (helper/mine/heldout.py) is timed too, with its evaluation every
50 iterations and no early stop: the cost of an iteration it trains, evaluations included.
Results and the machine they came from are recorded in bench/BENCHMARKS.md ("MINE").
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import seconds  # noqa: E402
from helper.mine import critic  # noqa: E402
from helper.mine.heldout import EVAL_EVERY, estimate_mi_heldout  # noqa: E402
from helper.precision import configure_backends  # noqa: E402

SIZES = {  # rows, x_dim, t_dim, batch, hidden
    "full": (10000, 3072, 512, 5000, 1024),
    "ty": (10000, 100, 512, 5000, 1024),    # I(T;Y) of CIFAR-100: the shared input is the one-hot label
    "small": (2000, 3072, 512, 500, 256),
}
LR = 8e-5


class ReferenceCritic(nn.Module):
    def __init__(self, input_size, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(input_size, hidden), nn.Linear(hidden, hidden)
        self.fc3, self.fc4 = nn.Linear(hidden, hidden), nn.Linear(hidden, 1)
        for layer in (self.fc1, self.fc2, self.fc3):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.constant_(layer.bias, 0)

    def forward(self, x):
        return self.fc4(torch.relu(self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))))


def numpy_batch(data, x_dim, batch, joint):
    first = np.random.choice(len(data), size=batch, replace=False)
    if joint:
        return data[first]
    second = np.random.choice(len(data), size=batch, replace=False)
    return np.concatenate([data[first][:, :x_dim], data[second][:, x_dim:]], axis=1)


def reference_ms(data, x_dim, batch, hidden, iters, device):
    critic = ReferenceCritic(data.shape[1], hidden).to(device)
    optimizer = torch.optim.Adam(critic.parameters(), lr=LR)
    moving_average, bounds = 1.0, []

    def step():
        nonlocal moving_average
        joint = torch.from_numpy(numpy_batch(data, x_dim, batch, True)).to(device)
        marginal = torch.from_numpy(numpy_batch(data, x_dim, batch, False)).to(device)
        t_joint, exp_marginal = critic(joint), torch.exp(critic(marginal))
        bound = torch.mean(t_joint) - torch.log(torch.mean(exp_marginal))
        moving_average = 0.99 * moving_average + 0.01 * torch.mean(exp_marginal)  # never detached
        loss = -(torch.mean(t_joint) - torch.log(torch.mean(exp_marginal))
                 * torch.mean(exp_marginal).detach() / moving_average.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bounds.append(bound.detach().cpu().numpy())

    return timed(step, iters, device)


def ours_ms(x, t, batch, hidden, iters, device, amp, heldout=False):
    """ms per iteration per checkpoint; t is [K, N, d] for K checkpoints sharing x."""
    def run(count):
        if heldout:  # patience past the run: every iteration trains, an evaluation every EVAL_EVERY
            estimate_mi_heldout(x, t, iters=count, lr=LR, batch_size=batch, hidden_size=hidden,
                                             amp=amp, patience=10 * count)
        else:
            critic.estimate_mi_batched(x, t, iters=count, lr=LR, batch_size=batch, hidden_size=hidden, amp=amp)
    # Whole calls: time a short and a long run and keep the difference, which cancels set-up costs.
    warm = max(2, iters // 5)
    run(warm)
    short = timed_once(lambda: run(warm), device)
    long = timed_once(lambda: run(warm + iters), device)
    return (long - short) / iters / t.shape[0]


def timed(step, iters, device):
    for _ in range(max(2, iters // 5)):
        step()
    return timed_once(lambda: [step() for _ in range(iters)], device) / iters


def timed_once(work, device):
    """Milliseconds `work()` takes."""
    return seconds(work, device) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="full",
                        help="full: CIFAR-100 I(X;T) shapes; ty: CIFAR-100 I(T;Y) shapes; small: for a CPU")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations (default 50 full, 20 small)")
    parser.add_argument("--batch_ckpts", type=int, default=4, help="checkpoints in the batched run of ours")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="also time ours with bf16 autocast (CUDA)")
    parser.add_argument("--profile", action="store_true",
                        help="then profile ours (1 checkpoint): operators by device time, and host syncs in the loop")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows, x_dim, t_dim, batch, hidden = SIZES[args.size]
    iters = args.iters or (20 if args.size == "small" else 50)
    configure_backends(device)  # TF32 for both loops, as in the paper's environment (SPEC 9)
    np.random.seed(0)
    torch.manual_seed(0)
    x = torch.randn(rows, x_dim)
    t = torch.randn(args.batch_ckpts, rows, t_dim)
    host_data = np.concatenate([x.numpy(), t[0].numpy()], axis=1)
    x_device, t_device = x.to(device), t.to(device)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"MINE iteration ({args.size} shapes), {rows} rows, X {x_dim} + T {t_dim}, batch {batch}, hidden {hidden}, "
          f"{iters} timed iterations, {name}, torch {torch.__version__}")
    reference = reference_ms(host_data, x_dim, batch, hidden, iters, device)
    timings = [("reference style (numpy draws, host copies, graph-growing average)", reference)]
    variants = [(1, False), (args.batch_ckpts, False)] + ([(1, True), (args.batch_ckpts, True)] if args.amp else [])
    for copies, amp in variants:
        label = f"ours, {copies} checkpoint{'s' if copies > 1 else ''} per run{', bf16' if amp else ''} (per checkpoint)"
        timings.append((label, ours_ms(x_device, t_device[:copies], batch, hidden, iters, device, amp)))
    # At least two held-out evaluations inside the timed difference of two runs.
    heldout_iters = max(iters, 2 * EVAL_EVERY)
    for copies in (1, args.batch_ckpts):
        label = f"ours, held-out protocol, {copies} checkpoint{'s' if copies > 1 else ''} per run (per checkpoint)"
        timings.append((label, ours_ms(x_device, t_device[:copies], batch, hidden, heldout_iters, device, False,
                                       heldout=True)))
    for label, ms in timings:
        print(f"{label:<75} {ms:9.2f} ms/iter  {reference / ms:6.1f}x")
    if args.profile:
        profile_ours(x_device, t_device[:1], batch, hidden, iters, device)


def profile_ours(x, t, batch, hidden, iters, device):
    """Where one checkpoint's iteration spends its time: a fixed cost that batching checkpoints
    amortises shows up here as host time, device idle time or a synchronisation."""
    from torch.profiler import ProfilerActivity, profile

    def run():
        critic.estimate_mi_batched(x, t, iters=iters, lr=LR, batch_size=batch, hidden_size=hidden)
    run()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"\nprofile of {iters} iterations of ours, 1 checkpoint, float32:")
    print(prof.key_averages().table(sort_by=sort, row_limit=20))
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("warn")  # names every operation that waits for the device
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")


if __name__ == "__main__":
    main()
