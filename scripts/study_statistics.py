"""The study's statistics, fixed before its runs were looked at (docs/real_study.md, "Statistics").

A study gives, per method and seed, a transfer-accuracy curve over K equally spaced
checkpoints scored on the same target test images. Seeds are the unit: every statistic is
computed per seed, then summarised over seeds with a t interval (n - 1 degrees of freedom).

- late_drop (the primary statistic): the mean accuracy over the middle third of the
  checkpoints minus the mean over the last third, per seed. Its windows are fixed by K alone,
  so no peak is picked on the data that then measure the drop; the two windows of a seed are
  scored on the same images, so the difference is paired. A fall is declared when the whole
  95% interval of the mean over seeds lies above zero (a one-sided test at 2.5%).
- crossfit_drop (secondary): the peak of the mean curve of one half of the seeds, and the drop
  from that epoch to the last checkpoint measured on the other half; both halves take a turn,
  so each seed's drop is measured at a peak its own noise did not choose.
- peak_drop (the statistic the study used before, kept to show its bias): the peak of the mean
  curve of all seeds minus its last value, with its standard error over seeds. On a flat noisy
  curve the maximum of K noisy means sits above the last one: it reports a drop where there is none.

bench/study_power.py simulates all three at a study's own noise, seeds and checkpoint count:
their false-positive rate on flat curves and their power at a range of true drops.
"""
import functools
import math
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
POWER = 0.8  # the power at which the smallest detectable drop is stated


@dataclass
class Interval:
    """A mean over seeds with its 95% t interval; `falls` when the interval lies above zero."""
    mean: float
    stderr: float
    low: float
    high: float
    seeds: int
    values: list  # the per-seed values

    @property
    def falls(self):
        return self.low > 0


def t_interval(values, confidence=CONFIDENCE):
    """Mean of per-seed values with its two-sided t interval; with one seed the interval is unbounded."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Interval(mean, math.nan, -math.inf, math.inf, n, list(values))
    stderr = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    half = t_quantile(0.5 + confidence / 2, n - 1) * stderr
    return Interval(mean, stderr, mean - half, mean + half, n, list(values))


@functools.cache
def t_quantile(probability, degrees):
    return float(stats.t.ppf(probability, degrees))


def windows(count):
    """(middle, last): index lists of the middle and last thirds of `count` checkpoints, each
    count // 3 long, the last ending at the last checkpoint."""
    width = count // 3
    if width < 1:
        raise ValueError(f"the late drop needs at least 3 checkpoints, got {count}")
    return list(range(count - 2 * width, count - width)), list(range(count - width, count))


def window_difference(curve):
    """Middle-third mean minus last-third mean of one curve (a list in epoch order)."""
    middle, last = windows(len(curve))
    return sum(curve[i] for i in middle) / len(middle) - sum(curve[i] for i in last) / len(last)


def late_drop(curves):
    """The primary statistic over seeds; `curves` is a list of per-seed lists on the same checkpoints."""
    return t_interval([window_difference(curve) for curve in curves])


def mean_curve(curves):
    return [sum(values) / len(values) for values in zip(*curves)]


def argmax(values):
    """Index of the largest value, the earliest on ties."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def crossfit_drop(curves):
    """Each seed's drop from the peak of the other half's mean curve to its own last value; the
    seeds split into the first and second half of the list (with an odd count the middle seed
    joins the second half). None with fewer than 2 seeds."""
    if len(curves) < 2:
        return None
    half = len(curves) // 2
    first, second = curves[:half], curves[half:]
    drops = []
    for chooses, measured in ((first, second), (second, first)):
        peak = argmax(mean_curve(chooses))
        drops += [curve[peak] - curve[-1] for curve in measured]
    return t_interval(drops)


def peak_drop(curves):
    """(index of the peak of the mean curve, its drop to the last checkpoint with the interval of the
    per-seed differences between those two checkpoints): the biased statistic, for comparison."""
    peak = argmax(mean_curve(curves))
    return peak, t_interval([curve[peak] - curve[-1] for curve in curves])


def paired_difference(first, second):
    """Mean of second - first over seeds, paired by seed (two lists in the same seed order)."""
    return t_interval([b - a for a, b in zip(first, second)])


def checkpoint_noise(curves):
    """The spread of one checkpoint's accuracy about its seed's smooth trend, in points: from the
    differences of successive checkpoints in the last two thirds, sd / sqrt(2) (a curve moving
    slowly there adds little). None with too few checkpoints."""
    steps = [curve[i + 1] - curve[i] for curve in curves for i in range(len(curve) // 3, len(curve) - 1)]
    if len(steps) < 2:
        return None
    mean = sum(steps) / len(steps)
    return math.sqrt(sum((s - mean) ** 2 for s in steps) / (len(steps) - 1) / 2)


def detectable_difference(stderr, seeds, confidence=CONFIDENCE, power=POWER):
    """The smallest true mean difference a one-sided test at (1 - confidence) / 2 detects with
    probability `power`, for a per-seed standard error `stderr` of the mean over `seeds` seeds."""
    if seeds < 2 or not math.isfinite(stderr):
        return math.inf
    return (t_quantile(0.5 + confidence / 2, seeds - 1) + t_quantile(power, seeds - 1)) * stderr
