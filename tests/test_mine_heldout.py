"""The held-out MINE protocol (helper/mine/heldout.py) and `mine.py --protocol heldout`.

Problems are small (a few hundred rows, hidden 64, batches of 100) so that a critic
memorises its sample within a few hundred iterations: the case the protocol exists for.
"""
import math

import pytest
import torch

import mine
import util
from helper.mine import critic as reference
from helper.mine import heldout as mine_heldout
from helper.mine import report as mine_report
from helper.mine.calibration import class_problem, correlated_gaussians, rho_for_mi
from helper.results import read_results
from tests.test_mine_script import RUN_NAME, XT, recording, results_file, tensorboard, workdir  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = dict(iters=1000, lr=3e-3, batch_size=100, hidden_size=64)
HELDOUT = dict(eval_every=20, patience=200, eval_fraction=0.4)


def small_problem(seed, mi=0.5, dim=5, rows=500):
    return correlated_gaussians(rows, dim, rho_for_mi(mi, dim), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- the estimate

@pytest.mark.parametrize("seed", [1, 2])
def test_heldout_estimate_stays_below_the_truth_where_the_reference_protocol_memorises(seed):
    # 300 training rows and a fast lr: the reference's number doubles the truth. A critic
    # that trained on its held-out rows would read as high (measured: 1.10 and 0.98).
    x, y = small_problem(seed)
    result = mine_heldout.estimate_mi_heldout(x, y, **FAST, **HELDOUT)[0]
    memorised = reference.estimate_mi(x, y, **FAST, average_last=100)
    assert memorised.estimate > 0.5 + 4 * result.stderr
    assert 0.5 * 0.5 < result.estimate <= 0.5 + 2 * result.stderr
    assert 0.01 < result.stderr < 0.2
    assert result.protocol == "heldout" and result.diagnostics["train_estimate"] > result.estimate
    assert not result.diagnostics["best_at_first_eval"]


def test_independent_variables_read_near_zero_and_are_flagged_as_best_at_the_first_evaluation():
    # 20 independent dimensions on each side: whatever the critic learns is the sample's noise,
    # so the held-out bound only falls after the first evaluation.
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(500, 20, generator=generator), torch.randn(500, 20, generator=generator)
    result = mine_heldout.estimate_mi_heldout(x, y, **FAST, **HELDOUT)[0]
    assert result.diagnostics["best_at_first_eval"] and result.iteration == HELDOUT["eval_every"]
    assert result.estimate <= 2 * result.stderr and result.estimate > -0.05
    assert "no dependence that generalises" in mine_report.describe(result)


def test_early_stopping_stops_and_reports_the_evaluation_it_used():
    x, y = small_problem(1)
    result = mine_heldout.estimate_mi_heldout(x, y, **FAST, **HELDOUT)[0]
    iterations = [iteration for iteration, _ in result.heldout_curve]
    assert result.diagnostics["status"] == "stopped" and result.iterations < FAST["iters"]
    assert iterations == list(range(20, result.iterations + 1, 20))
    # It stopped at the first evaluation `patience` iterations after its best one.
    assert result.iteration in iterations and result.iterations == result.iteration + HELDOUT["patience"]
    # The estimate: the mean of the 5 raw held-out bounds ending at the reported iteration,
    # the highest such mean of the run.
    bounds = [bound for _, bound in result.heldout_curve]
    means = [sum(bounds[max(0, i - 4):i + 1]) / len(bounds[max(0, i - 4):i + 1]) for i in range(len(bounds))]
    assert result.estimate == pytest.approx(means[iterations.index(result.iteration)], abs=1e-6)
    assert result.estimate == pytest.approx(max(means), abs=1e-6)
    never = mine_heldout.estimate_mi_heldout(x, y, **{**FAST, "iters": 100}, **HELDOUT)[0]
    assert never.iterations == 100 and never.diagnostics["status"] == "max_iterations"


def test_heldout_rows_are_never_drawn_for_training(monkeypatch):
    # Column 0 of `a` and of `b` carries each row's id, so every training batch says which rows
    # it drew, for the joint pairs and for the marginal side's own draw.
    x, y = small_problem(1)
    ids = torch.arange(len(x), dtype=torch.float32)[:, None]
    a, b = torch.cat([ids, x], dim=1), torch.cat([ids, y], dim=1)
    drawn, drawn_b, heldout_rows = set(), set(), []
    real_draw, real_groups = reference._draw_batches, reference.HeldOutGroups.__init__

    def draw(a_, b_, train_rows, batch_size, generator):
        a_rows, b_rows = real_draw(a_, b_, train_rows, batch_size, generator)
        drawn.update(a_rows[..., 0].long().flatten().tolist())
        drawn_b.update(b_rows[..., 0].long().flatten().tolist())
        return a_rows, b_rows

    def groups(self, a_, b_, rows, *args):
        heldout_rows.extend(rows.tolist())
        real_groups(self, a_, b_, rows, *args)

    monkeypatch.setattr(reference, "_draw_batches", draw)
    monkeypatch.setattr(reference.HeldOutGroups, "__init__", groups)
    mine_heldout.estimate_mi_heldout(a, b, **{**FAST, "iters": 300}, **HELDOUT)
    assert len(heldout_rows) == 200 and len(drawn) == 300 and drawn_b == drawn
    assert drawn.isdisjoint(heldout_rows) and drawn | set(heldout_rows) == set(range(500))


def test_batched_and_lone_critics_agree():
    # Same initial weights, batches and held-out pairs; batched matrix products round
    # differently, which a gentler lr keeps from growing (at lr 3e-3 one copy drifts 0.01).
    gentle = {**FAST, "lr": 1e-3, "iters": 400}
    problems = [small_problem(seed) for seed in (1, 2, 3)]
    batched = mine_heldout.estimate_mi_heldout(torch.stack([x for x, _ in problems]),
                                               torch.stack([y for _, y in problems]), **gentle, **HELDOUT)
    for (x, y), together in zip(problems, batched):
        alone = mine_heldout.estimate_mi_heldout(x, y, **gentle, **HELDOUT)[0]
        assert (alone.iteration, alone.iterations) == (together.iteration, together.iterations)
        assert alone.estimate == pytest.approx(together.estimate, abs=1e-3)
        assert alone.stderr == pytest.approx(together.stderr, rel=1e-2)


class RowCritic:
    """A stand-in critic whose value of a pair is a(row)[0] * b(row)[0]: values by hand."""

    def __call__(self, a_rows, b_rows):
        return (a_rows[..., 0] * b_rows[..., 0])[None]


def test_heldout_groups_pair_rows_within_their_group_and_the_jackknife_by_hand():
    rows = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    a, b = torch.randn(60, 2), torch.randn(60, 2)
    groups = reference.HeldOutGroups(a, b, rows, batch_size=32, amp=False, generator=torch.Generator())
    assert groups.groups == 10  # MIN_GROUPS groups of 6
    joint = slice(0, 60)
    assert torch.equal(groups.a_index[joint], rows) and torch.equal(groups.b_index[joint], rows)
    group_of = {int(row): int(group) for row, group in zip(rows, groups.group_ids[joint])}
    for shuffle in range(reference.HELDOUT_SHUFFLES):
        part = slice(60 * (shuffle + 1), 60 * (shuffle + 2))
        a_rows, b_rows = groups.a_index[part].tolist(), groups.b_index[part].tolist()
        assert sorted(a_rows) == sorted(b_rows) == sorted(rows.tolist())   # every row once on each side
        assert all(i != j and group_of[i] == group_of[j] for i, j in zip(a_rows, b_rows))
    bound, replicates = groups(RowCritic())

    def dv(keep):  # the DV bound over the groups in `keep`, straight from the pairs
        pairs = [(i, j) for i, j, g in zip(groups.a_index.tolist(), groups.b_index.tolist(),
                                           groups.group_ids.tolist()) if g in keep]
        joint_values = [float(a[i, 0] * b[i, 0]) for i, j in pairs if i == j]
        marginal = torch.tensor([float(a[i, 0] * b[j, 0]) for i, j in pairs if i != j])
        return sum(joint_values) / len(joint_values) - (torch.logsumexp(marginal, 0) - math.log(len(marginal)))

    assert float(bound[0]) == pytest.approx(float(dv(set(range(10)))), abs=1e-5)
    for left_out in (0, 7):
        assert float(replicates[0, left_out]) == pytest.approx(float(dv(set(range(10)) - {left_out})), abs=1e-5)


def test_group_logsumexp_matches_one_group_at_a_time_for_large_values():
    values = torch.tensor([[1000.0, 2.0, 999.0, -5.0, 3.0]])
    ids = torch.tensor([0, 1, 0, 1, 2])
    expected = [torch.logsumexp(values[0, ids == g], 0) for g in range(3)]
    assert reference.group_logsumexp(values, ids, 3)[0].tolist() == pytest.approx([float(e) for e in expected])


def test_the_stderr_is_the_jackknife_of_the_window_mean():
    track = mine_heldout.EarlyStopping(patience=100)
    replicates = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])]
    for iteration, (bound, replicate) in enumerate(zip((0.5, 0.7), replicates), 1):
        track.add(10 * iteration, bound, replicate)
    # window mean of the replicates: [2, 2, 2] -> no spread between groups
    assert track.best == 1 and track.smoothed(1) == pytest.approx(0.6) and track.stderr(1) == 0.0
    track.add(30, 0.1, torch.tensor([0.0, 3.0, 6.0]))   # window mean [4/3, 7/3, 10/3]: deviations -1, 0, 1
    assert track.stderr(2) == pytest.approx(math.sqrt(2 / 3 * (1 + 0 + 1)))


def test_class_problem_labels_are_determined_by_the_features():
    features, one_hot, truth = class_problem(1000, 12, 10, 16, generator=torch.Generator().manual_seed(0))
    labels = one_hot.argmax(1)
    assert truth == pytest.approx(math.log(10)) and one_hot.shape == (1000, 16) and one_hot[:, 10:].sum() == 0
    means = torch.stack([features[labels == c].mean(0) for c in range(10)])
    assert torch.equal(torch.cdist(features, means).argmin(1), labels)  # nearest class mean: always right


# --------------------------------------------------------------------------- mine.py --protocol heldout

HELD = ["--protocol", "heldout", "--eval_every", "10", "--patience", "20"]


def test_heldout_rows_go_to_their_own_file_with_stderr_and_iteration(workdir, capsys, monkeypatch):  # noqa: F811
    mine.main(XT)
    reference_rows = read_results(results_file(workdir, "xt", "cifar100"))
    calls = recording(monkeypatch, mine_heldout, "estimate_mi_heldout")
    mine.main(XT + HELD)
    assert [(c["eval_every"], c["patience"], c["eval_fraction"]) for c in calls] == [(10, 20, 0.2)]
    out = capsys.readouterr().out
    rows = read_results(workdir / "save" / "model" / RUN_NAME / "mine_xt_cifar100_heldout.jsonl")
    assert read_results(results_file(workdir, "xt", "cifar100")) == reference_rows  # untouched
    assert [row["epoch"] for row in rows] == [2, 4, 6]
    for row in rows:
        assert row["protocol"] == "heldout" and row["eval_fraction"] == 0.2 and row["patience"] == 20
        assert row["iteration"] <= row["iterations"] <= 50 and row["stderr"] > 0
        # an evaluation every 10 iterations; the estimate is the best mean of up to 5 in a row
        steps, bounds = zip(*row["heldout_curve"])
        assert list(steps) == list(range(10, row["iterations"] + 1, 10))
        smoothed = [sum(bounds[max(0, i - 4):i + 1]) / len(bounds[max(0, i - 4):i + 1]) for i in range(len(bounds))]
        best = max(range(len(bounds)), key=lambda i: (smoothed[i], -i))
        assert row["estimate"] == pytest.approx(smoothed[best]) and row["iteration"] == steps[best]
        assert f"I(X;T) of resnet8 of {row['epoch']}-th epoch is : {row['estimate']}" in out
    assert out.count("held-out bound ") == 3
    curves = tensorboard(workdir)
    assert curves["mine/I(X;T)_cifar100_heldout"] == pytest.approx({row["epoch"]: row["estimate"] for row in rows})
    assert curves["mine_heldout_curve/epoch_2/I(X;T)_cifar100_bound"] == pytest.approx(dict(rows[0]["heldout_curve"]))
    assert not any(tag.startswith("mine_curve/epoch_2/") and tag.endswith("_heldout") for tag in curves)
    mine.main(XT + HELD)
    assert "nothing to do" in capsys.readouterr().out


def test_each_protocol_refuses_the_other_protocols_flags(workdir, capsys):  # noqa: F811
    for flags, message in ((["--patience", "5"], "--patience belongs to --protocol heldout"),
                           (["--eval_every", "5"], "--eval_every belongs to --protocol heldout"),
                           (HELD + ["--early_stop"], "--early_stop belongs to --protocol reference"),
                           (HELD + ["--eval_fraction", "0"], "needs --eval_fraction in (0, 1)")):
        with pytest.raises(SystemExit) as stop:
            mine.parse_option(XT + flags)
        assert stop.value.code == 2 and message in capsys.readouterr().err


def test_heldout_reruns_skip_refuse_other_settings_force_and_shard(workdir, capsys):  # noqa: F811
    heldout_file = workdir / "save" / "model" / RUN_NAME / "mine_xt_cifar100_heldout.jsonl"
    for shard in ("0/2", "1/2"):
        mine.main(XT + HELD + ["--shard", shard])
    assert [row["epoch"] for row in read_results(heldout_file)] == [2, 4, 6]
    with pytest.raises(util.UserError, match="patience 20 \\(now 30\\)"):
        mine.main(XT + ["--protocol", "heldout", "--eval_every", "10", "--patience", "30"])
    with pytest.raises(util.UserError, match="eval_every 10 \\(now 5\\)"):
        mine.main(XT + ["--protocol", "heldout", "--eval_every", "5", "--patience", "20"])
    mine.main(XT + ["--protocol", "heldout", "--eval_every", "10", "--patience", "30", "--force"])
    assert {row["patience"] for row in read_results(heldout_file)} == {30}
    with pytest.raises(util.UserError, match="no usable held-out or training set"):  # 160 rows: none held out
        mine.main(XT + HELD + ["--eval_fraction", "0.001", "--results", "other.jsonl"])


def test_calibration_rows_carry_what_a_script_compares(workdir):  # noqa: F811
    common = ["--iter_num", "60", "--lr", "1e-3", "--batch_size", "64", "--hidden_size", "16",
              "--calibrate_rows", "400", "--device", "cpu", "--results", "calibration.jsonl"]
    mine.main(["--calibrate", "gaussian", "--dim", "2", "--true_mi", "0.5", "1", *HELD, *common])
    mine.main(["--calibrate", "cubic", "--dim", "2", "--true_mi", "1", *common])
    mine.main(["--calibrate", "classes", "--dim", "4", "--classes", "2", "4", *HELD, *common])
    rows = read_results(workdir / "calibration.jsonl")
    assert [(row["protocol"], row["problem"], row["true_mi"]) for row in rows] == [
        ("heldout", "gaussian", 0.5), ("heldout", "gaussian", 1.0), ("reference", "cubic", 1.0),
        ("heldout", "classes", pytest.approx(math.log(2))), ("heldout", "classes", pytest.approx(math.log(4)))]
    for row in rows:
        assert {"dim", "estimate", "stderr", "iteration", "iterations", "seconds"} <= row.keys()
        assert row["error"] == pytest.approx((row["estimate"] - row["true_mi"]) / row["true_mi"])


def test_too_few_held_out_rows_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch):
    calibrate = ["--calibrate", "gaussian", "--dim", "2", "--true_mi", "0.5", "--calibrate_rows", "60",
                 "--batch_size", "20", "--hidden_size", "8", "--iter_num", "5", "--device", "cpu", *HELD,
                 "--eval_fraction", "0.02"]  # 1 held-out row: no held-out set
    with pytest.raises(util.UserError, match="leaves no usable held-out.*see --eval_fraction"):
        mine.main(calibrate)

    def broken(*args, **kwargs):
        raise ValueError("a mistake inside the estimator")
    monkeypatch.setattr(mine_heldout, "estimate_mi_heldout", broken)
    with pytest.raises(ValueError, match="a mistake inside"):
        mine.main(calibrate[:-2])
