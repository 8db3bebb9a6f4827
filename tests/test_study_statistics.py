"""The study's drop statistics (scripts/study_statistics.py) on curves worked out by hand, and
bench/study_power.py's simulation of them."""
import json
import math

import pytest

from bench import study_power
from scripts import study_statistics as statistics

T_975_2, T_975_3, T_80_3 = 4.302652729749462, 3.1824463052837078, 0.9784723123633042  # t quantiles


def test_the_windows_are_the_middle_and_last_thirds_ending_at_the_last_checkpoint():
    assert statistics.windows(15) == ([5, 6, 7, 8, 9], [10, 11, 12, 13, 14])
    assert statistics.windows(4) == ([2], [3])  # one checkpoint each; the first two are neither
    assert statistics.windows(8) == ([4, 5], [6, 7])
    with pytest.raises(ValueError, match="at least 3"):
        statistics.windows(2)


def test_the_t_interval_of_three_values():
    interval = statistics.t_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, standard error 1 / sqrt(3), half width t(0.975, 2) / sqrt(3) = 2.484
    assert interval.mean == 2 and interval.stderr == pytest.approx(1 / math.sqrt(3))
    assert (interval.low, interval.high) == pytest.approx((2 - T_975_2 / math.sqrt(3), 2 + T_975_2 / math.sqrt(3)))
    assert not interval.falls  # -0.48 .. 4.48 holds zero
    assert statistics.t_interval([3.0, 4.0, 5.0]).falls  # 1.52 .. 6.48 lies above zero
    alone = statistics.t_interval([2.5])
    assert alone.mean == 2.5 and alone.low == -math.inf and not alone.falls


def test_the_late_drop_of_curves_worked_out_by_hand():
    # 6 checkpoints: middle window = checkpoints 2, 3; last = 4, 5.
    curves = [[50, 60, 62, 64, 61, 59],   # (62 + 64) / 2 - (61 + 59) / 2 = 63 - 60 = 3
              [52, 58, 60, 60, 59, 58],   # 60 - 58.5 = 1.5
              [49, 61, 63, 61, 60, 60.5]]  # 62 - 60.25 = 1.75
    drop = statistics.late_drop(curves)
    assert drop.values == pytest.approx([3, 1.5, 1.75])
    mean = (3 + 1.5 + 1.75) / 3
    sd = math.sqrt(((3 - mean) ** 2 + (1.5 - mean) ** 2 + (1.75 - mean) ** 2) / 2)
    assert drop.mean == pytest.approx(mean) and drop.stderr == pytest.approx(sd / math.sqrt(3))
    assert drop.low == pytest.approx(mean - T_975_2 * sd / math.sqrt(3))
    assert drop.falls  # 2.08 - 4.30 * 0.46 = 0.10 > 0
    rising = [[c[0], c[1], c[2], c[3], c[4] + 5, c[5] + 5] for c in curves]
    assert not statistics.late_drop(rising).falls  # the last window is now higher: a rise, not a fall


def test_the_cross_fitted_drop_takes_each_half_s_peak_from_the_other_half():
    curves = [[1, 9, 2, 0],   # first half: mean curve 1, 7, 5, 1 -> peak at index 1
              [1, 5, 8, 2],
              [0, 1, 6, 3],   # second half: mean curve 0.5, 2, 7, 2 -> peak at index 2
              [1, 3, 8, 1]]
    drop = statistics.crossfit_drop(curves)
    # the second half measured at the first half's peak (index 1): 1 - 3, 3 - 1; the first half
    # at the second half's peak (index 2): 2 - 0, 8 - 2
    assert drop.values == [1 - 3, 3 - 1, 2 - 0, 8 - 2]
    assert statistics.crossfit_drop([[1, 2, 3]]) is None


def test_the_peak_drop_picks_the_peak_of_the_mean_curve():
    peak, drop = statistics.peak_drop([[1, 4, 2], [3, 2, 2]])  # mean 2, 3, 2: peak at 1
    assert peak == 1 and drop.values == [4 - 2, 2 - 2]
    assert statistics.argmax([1, 3, 3]) == 1  # the earliest of equal values


def test_paired_differences_checkpoint_noise_and_the_detectable_difference():
    assert statistics.paired_difference([60, 62], [59, 64]).values == [-1, 2]
    # last two thirds of 6 checkpoints: steps from index 2 on: 1, -1, 1 and 0, 0, 0
    steps = [1, -1, 1, 0, 0, 0]
    mean = sum(steps) / 6
    expected = math.sqrt(sum((s - mean) ** 2 for s in steps) / 5 / 2)
    assert statistics.checkpoint_noise([[0, 5, 1, 2, 1, 2], [3, 3, 7, 7, 7, 7]]) == pytest.approx(expected)
    assert statistics.detectable_difference(0.5, 4) == pytest.approx((T_975_3 + T_80_3) * 0.5)
    assert statistics.detectable_difference(0.5, 1) == math.inf


def test_the_simulation_keeps_the_false_positive_rate_and_sees_a_large_drop(tmp_path, capsys):
    results = tmp_path / "power.jsonl"
    study_power.main(["--seeds", "4", "--checkpoints", "9", "--noise", "0.5", "--drops", "0", "3",
                      "--sims", "800", "--results", str(results)])
    rows = {(row["statistic"], row["true_drop"]): row for row in map(json.loads, results.read_text().splitlines())}
    noise = math.sqrt(0.05 * 0.95 / 800)
    for name in ("late_drop", "crossfit_drop"):
        assert rows[name, 0]["rejection_rate"] <= 0.05 + 3 * noise
        assert rows[name, 3]["rejection_rate"] >= 0.95
        assert abs(rows[name, 0]["mean_statistic"]) < 0.1  # no drop on average where there is none
    # the statistic the study used before: picking the peak on the same data finds a drop on flat curves
    assert rows["peak_drop", 0]["mean_statistic"] > 0.2
    assert rows["late_drop", 3]["seeds"] == 4 and rows["late_drop", 3]["checkpoints"] == 9
    assert "smallest true drop of the grid detected with 80% power" in capsys.readouterr().out


def test_the_simulated_curve_rises_to_its_peak_then_falls_by_the_drop():
    curve = study_power.true_curve(6, 2.0, 1 / 3, 5.0)
    # positions 1/6 .. 1, peak at 1/3 (the second checkpoint): -2.5, 0, then down to -2
    assert curve.tolist() == pytest.approx([-2.5, 0, -0.5, -1, -1.5, -2])
