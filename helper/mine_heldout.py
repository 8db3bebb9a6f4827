"""The held-out MINE protocol (`mine.py --protocol heldout`): an estimate that does not memorise.

The reference protocol reports the DV bound on the very batches the critic trains on. With
10,000 rows a wide critic learns to tell this sample's own pairs from shuffled ones, and
the number climbs far past the truth (bench/BENCHMARKS.md: every 100-dimensional Gaussian
problem from 0.5 to 4 nats read 5.3-6.3). Here the critic trains exactly as there (same
batches, loss and moving-average correction, helper.mine.CriticTraining) on a training
part of the rows only, and what is reported is the DV bound on rows it never saw:

- The held-out rows (`eval_fraction`, 20% by default) form groups of about GROUP_ROWS
  rows. Every row is a joint pair; its marginal pairs are HELDOUT_SHUFFLES fixed
  derangements within its group (row i's a with another row's b of the same group), so a
  group's statistics use only its own rows and groups are independent units.
- Every `eval_every` iterations the DV bound on all held-out rows is evaluated, and the
  trailing mean of the last SMOOTHING evaluations is the smoothed held-out bound.
- A copy stops once its smoothed bound has not improved for `patience` iterations (never
  before `patience` iterations), or at `iters`.
- The estimate is the smoothed bound at its best evaluation, with the iteration it came
  from and its standard error: a delete-one-group jackknife of that window mean.

A critic is a lower bound on the truth whatever it learned, and a bound evaluated on
fresh rows is still one, so memorisation cannot raise the estimate; it lowers the held-out
bound, which is what stops training. Picking the best of many noisy evaluations could
overshoot the critic's own bound (the winner's curse); averaging SMOOTHING evaluations
keeps that to a fraction of a standard error (bench/BENCHMARKS.md, "held-out protocol").
"""
import math

import torch

from helper.mine import (AVERAGE_LAST, CriticTraining, MineResult, _check_inputs, _split_rows, _take_rows,
                         trailing_mean)
from helper.precision import autocast

EVAL_EVERY = 50         # iterations between held-out evaluations
SMOOTHING = 5           # evaluations averaged into the smoothed held-out bound
PATIENCE = 1000         # iterations without a better smoothed bound before a copy stops
HELDOUT_FRACTION = 0.2  # share of the rows the critic never trains on
GROUP_ROWS = 100        # held-out rows per jackknife group
MIN_GROUPS = 10         # fewer groups than this make the jackknife too coarse
HELDOUT_SHUFFLES = 4    # derangements per group: the marginal pairs of the held-out bound


def estimate_mi_heldout(a, b, *, iters, lr, batch_size=5000, hidden_size=1024, seed=0, amp=False,
                        eval_fraction=HELDOUT_FRACTION, eval_every=EVAL_EVERY, patience=PATIENCE):
    """Train one critic per copy on the training rows and return a MineResult per copy whose
    `estimate` is its best smoothed held-out DV bound (`stderr`, `iteration`).

    a, b: as helper.mine.estimate_mi_batched ([N, d] shared, or [K, N, d] per copy); every
    copy starts from the same initial weights and sees the same batches and held-out pairs,
    so batching is a speed setting. `iters` is the most iterations a copy trains.
    """
    if not 0 < eval_fraction < 1:
        raise ValueError(f"the held-out protocol needs an eval_fraction in (0, 1), got {eval_fraction}")
    copies, rows, device = _check_inputs(a, b)
    generator = torch.Generator(device=device).manual_seed(seed)
    train_rows, heldout_rows = _split_rows(rows, eval_fraction, generator, device)
    heldout = HeldOutGroups(a, b, heldout_rows, batch_size, amp, generator)
    training = CriticTraining(a, b, train_rows, iters, lr=lr, batch_size=batch_size, hidden_size=hidden_size,
                              amp=amp, generator=generator)
    track = [EarlyStopping(patience) for _ in range(copies)]
    with training:
        while training.done < iters and not training.stopped:
            training.step()
            if training.done % eval_every == 0 or training.done == iters:
                bounds, replicates = heldout(training.critic)
                bounds, replicates = bounds.cpu(), replicates.cpu()  # one host sync per evaluation
                for k in range(copies):
                    if training.active[k] and track[k].add(training.done, bounds[k], replicates[k]):
                        training.stop(k)
    curve, log_ma = training.curve.cpu(), training.log_ma.cpu()
    return [_result(curve[:training.stopped_at[k], k], log_ma[k], track[k], training.stopped_at[k] < iters,
                    heldout.groups)
            for k in range(copies)]


class HeldOutGroups:
    """The DV bound of every critic on the held-out rows and its delete-one-group replicates.

    `rows` (already in random order) are cut into groups of about GROUP_ROWS; each row is a
    joint pair, and each of HELDOUT_SHUFFLES shuffles pairs every row's a with the b of the
    next row in a random cyclic order of its own group. The pairs are fixed, so evaluations
    at different iterations compare.
    """

    def __init__(self, a, b, rows, batch_size, amp, generator):
        count = len(rows)
        groups = min(max(MIN_GROUPS, count // GROUP_ROWS), count // 2)  # a derangement needs 2 rows
        if groups < 2:
            raise ValueError(f"{count} held-out rows are too few for the held-out protocol; raise eval_fraction")
        self.a, self.b, self.batch_size, self.amp, self.groups = a, b, batch_size, amp, groups
        device = rows.device
        group = torch.arange(count, device=device) * groups // count  # contiguous groups of near-equal size
        sizes = torch.bincount(group, minlength=groups)
        starts = torch.cumsum(sizes, 0) - sizes
        a_index, b_index, group_ids = [rows], [rows], [group]
        for _ in range(HELDOUT_SHUFFLES):
            # Sort by (group, random key): a random order inside each group, groups still contiguous.
            order = torch.argsort(group * 2.0 + torch.rand(count, generator=generator, device=device))
            position = torch.arange(count, device=device)
            following = position + 1
            wraps = following == starts[group] + sizes[group]
            following = torch.where(wraps, starts[group], following)
            a_index.append(rows[order])
            b_index.append(rows[order[following]])
            group_ids.append(group)
        self.a_index, self.b_index = torch.cat(a_index), torch.cat(b_index)
        self.group_ids, self.joint_count = torch.cat(group_ids), count
        self.joint_sizes, self.marginal_sizes = sizes, sizes * HELDOUT_SHUFFLES

    @torch.no_grad()
    def __call__(self, critic):
        """([K] DV bounds on all groups, [K, G] the bounds with one group left out each)."""
        values = []
        for start in range(0, len(self.a_index), self.batch_size):
            a_rows = _take_rows(self.a, self.a_index[start:start + self.batch_size])
            b_rows = _take_rows(self.b, self.b_index[start:start + self.batch_size])
            with autocast(a_rows.device, self.amp):
                values.append(critic(a_rows, b_rows).float())
        values = torch.cat(values, dim=1)
        joint, marginal = values[:, :self.joint_count], values[:, self.joint_count:]
        joint_group, marginal_group = self.group_ids[:self.joint_count], self.group_ids[self.joint_count:]
        joint_sums = torch.zeros(len(values), self.groups, device=values.device).index_add_(1, joint_group, joint)
        log_sum_exps = group_logsumexp(marginal, marginal_group, self.groups)
        bound = dv_from_groups(joint_sums, log_sum_exps, self.joint_sizes, self.marginal_sizes)
        # Leave group g out: the other groups' sums, and the logsumexp over the other groups.
        left_out = torch.eye(self.groups, dtype=torch.bool, device=values.device)
        others = log_sum_exps[:, None, :].masked_fill(left_out, -math.inf)
        replicates = ((joint_sums.sum(1, keepdim=True) - joint_sums) / (self.joint_count - self.joint_sizes)
                      - (torch.logsumexp(others, dim=2)
                         - torch.log(self.marginal_sizes.sum() - self.marginal_sizes).to(values.dtype)))
        return bound, replicates


def group_logsumexp(values, group_ids, groups):
    """[K, G]: logsumexp of the [K, M] values of each group, stable for large critic values."""
    peak = torch.full((len(values), groups), -math.inf, device=values.device)
    peak = peak.scatter_reduce(1, group_ids.expand_as(values), values, reduce="amax")
    sums = torch.zeros_like(peak).index_add_(1, group_ids, torch.exp(values - peak[:, group_ids]))
    return peak + torch.log(sums)


def dv_from_groups(joint_sums, log_sum_exps, joint_sizes, marginal_sizes):
    """[K]: mean of the joint values minus log mean exp of the marginal values, from per-group sums."""
    mean_joint = joint_sums.sum(1) / joint_sizes.sum()
    return mean_joint - (torch.logsumexp(log_sum_exps, dim=1) - math.log(int(marginal_sizes.sum())))


class EarlyStopping:
    """One copy's held-out curve, its smoothed best and the stopping rule."""

    def __init__(self, patience):
        self.patience = patience
        self.iterations, self.bounds, self.replicates = [], [], []
        self.best = None  # index of the best smoothed evaluation

    def add(self, iteration, bound, replicates):
        """Record an evaluation; True when the copy should stop."""
        self.iterations.append(iteration)
        self.bounds.append(float(bound))
        self.replicates.append(replicates)
        latest = len(self.bounds) - 1
        if self.best is None or self.smoothed(latest) > self.smoothed(self.best):
            self.best = latest
        return iteration >= self.patience and iteration - self.iterations[self.best] >= self.patience

    def window(self, index):
        return slice(max(0, index + 1 - SMOOTHING), index + 1)

    def smoothed(self, index):
        values = self.bounds[self.window(index)]
        return sum(values) / len(values)

    def stderr(self, index):
        """Delete-one-group jackknife of the window mean: sqrt((G-1)/G * sum_g (r_g - mean r)^2)."""
        replicates = torch.stack(self.replicates[self.window(index)]).double().mean(0)
        groups = len(replicates)
        return math.sqrt((groups - 1) / groups * float(((replicates - replicates.mean()) ** 2).sum()))


def _result(curve, log_ma, track, stopped, groups):
    best = track.best
    train_estimate = float(trailing_mean(curve, AVERAGE_LAST)[-1]) if len(curve) else float("nan")
    estimate = track.smoothed(best)
    diagnostics = {
        "status": "stopped" if stopped else "max_iterations",
        # The critic never beat its first evaluation: it found no dependence that generalises
        # (a value near 0 then means "not measurable on this sample", not "independent").
        "best_at_first_eval": best == 0,
        "train_estimate": train_estimate, "heldout_gap": train_estimate - estimate,
        "groups": groups, "smoothing": SMOOTHING, "patience": track.patience,
    }
    return MineResult(estimate=estimate, curve=curve, iterations=len(curve),
                      skipped_steps=int((~torch.isfinite(curve)).sum()), moving_average=float(log_ma.exp()),
                      heldout_estimate=estimate, average_last=min(AVERAGE_LAST, max(1, len(curve))),
                      heldout_curve=list(zip(track.iterations, track.bounds)), diagnostics=diagnostics,
                      protocol="heldout", stderr=track.stderr(best), iteration=track.iterations[best])
