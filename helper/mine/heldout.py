"""The held-out MINE protocol (`mine.py --protocol heldout`): an estimate that does not memorise.

The reference protocol reports the DV bound on the very batches the critic trains on. With
10,000 rows a wide critic learns to tell this sample's own pairs from shuffled ones, and
the number climbs far past the truth (bench/BENCHMARKS.md: every 100-dimensional Gaussian
problem from 0.5 to 4 nats read 5.3-6.3). Here the critic trains exactly as there (same
batches, loss and moving-average correction, helper.mine.critic.CriticTraining) on a training
part of the rows only, and what is reported is the DV bound on rows it never saw:

- The held-out rows (`eval_fraction`, 20% by default) form groups of about 100 rows
  (helper.mine.critic.HeldOutGroups). Every row is a joint pair; its marginal pairs are 4 fixed
  derangements within its group (row i's a with another row's b of the same group), so a
  group's statistics use only its own rows and groups are independent units.
- Every `eval_every` iterations the DV bound on all held-out rows is evaluated, and the
  trailing mean of the last SMOOTHING evaluations (of all there are, before the
  SMOOTHING-th) is the smoothed held-out bound.
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
import torch

from helper.mine.critic import (AVERAGE_LAST, CriticTraining, HeldOutGroups, MineInputError, MineResult, check_inputs,
                         jackknife_stderr, split_rows, trailing_mean)

EVAL_EVERY = 50         # iterations between held-out evaluations
SMOOTHING = 5           # evaluations averaged into the smoothed held-out bound
PATIENCE = 1000         # iterations without a better smoothed bound before a copy stops
HELDOUT_FRACTION = 0.2  # share of the rows the critic never trains on


def estimate_mi_heldout(a, b, *, iters, lr, batch_size=5000, hidden_size=1024, seed=0, amp=False,
                        eval_fraction=HELDOUT_FRACTION, eval_every=EVAL_EVERY, patience=PATIENCE):
    """Train one critic per copy on the training rows and return a MineResult per copy whose
    `estimate` is its best smoothed held-out DV bound (`stderr`, `iteration`).

    a, b: as helper.mine.critic.estimate_mi_batched ([N, d] shared, or [K, N, d] per copy); every
    copy starts from the same initial weights and sees the same batches and held-out pairs,
    so batching is a speed setting. `iters` is the most iterations a copy trains.
    """
    if not 0 < eval_fraction < 1:
        raise MineInputError(f"the held-out protocol needs an eval_fraction in (0, 1), got {eval_fraction}")
    copies, rows, device = check_inputs(a, b)
    generator = torch.Generator(device=device).manual_seed(seed)
    train_rows, heldout_rows = split_rows(rows, eval_fraction, generator, device)
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
                    if training.running[k] and track[k].add(training.done, bounds[k], replicates[k]):
                        training.stop(k)
    curve, log_ma = training.curve.cpu(), training.log_ma.cpu()
    return [_result(curve[:training.stopped_at[k], k], log_ma[k], track[k], training.stopped_at[k] < iters,
                    heldout.groups)
            for k in range(copies)]


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
        """Delete-one-group jackknife of the window mean."""
        return float(jackknife_stderr(torch.stack(self.replicates[self.window(index)]).mean(0)))


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
        "groups": groups, "smoothed_over": len(track.bounds[track.window(best)]), "patience": track.patience,
    }
    return MineResult(estimate=estimate, curve=curve, iterations=len(curve),
                      skipped_steps=int((~torch.isfinite(curve)).sum()), moving_average=float(log_ma.exp()),
                      heldout_estimate=estimate, average_last=min(AVERAGE_LAST, max(1, len(curve))),
                      heldout_curve=list(zip(track.iterations, track.bounds)), diagnostics=diagnostics,
                      protocol="heldout", stderr=track.stderr(best), iteration=track.iterations[best])
