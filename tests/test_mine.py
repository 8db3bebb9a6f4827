"""MINE estimator (helper/mine/critic.py) and shared feature extraction (helper/features.py), on the CPU.

Estimator problems are small (hidden 64, batches of 256, ~1000 iterations) so each
test takes about a second; heavier calibration lives in bench/ and mine.py --calibrate.
"""
import math

import numpy as np
import pytest
import torch

import models
from helper.mine import critic as estimator
from helper.features import extract_features, normalised_images
from helper.mine.calibration import correlated_gaussians, gaussian_mi, rho_for_mi
from tests.fakedata import class_images

MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
SMALL = dict(batch_size=256, hidden_size=64, lr=1e-3, average_last=200)


pytestmark = pytest.mark.usefixtures("one_thread")


def gaussians(mi, dim, rows=2000, seed=1):
    rho = rho_for_mi(mi, dim) if mi else 0.0
    return correlated_gaussians(rows, dim, rho, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- features

def test_features_are_eval_mode_pooled_vectors_of_normalised_images():
    torch.manual_seed(0)
    model = models.build_model("resnet8", 10)
    images = class_images(np.arange(40) % 10)
    model.train()
    features = extract_features(model, images, MEAN, STD, "cpu", batch_size=16)
    assert not model.training
    by_hand = (images.transpose(0, 3, 1, 2) / 255.0 - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]
    x = normalised_images(images, MEAN, STD, "cpu")
    assert x.shape == (40, 3, 32, 32) and np.allclose(x.numpy(), by_hand, atol=1e-6)
    with torch.no_grad():
        expected = model(torch.as_tensor(by_hand, dtype=torch.float32), is_feat=True)[0][-1]
    assert features.shape == (40, model.feat_dim) and features.dtype == torch.float32
    assert torch.allclose(features, expected, atol=1e-5)


def test_features_accept_a_device_tensor():
    model = models.build_model("resnet8", 10)
    images = torch.as_tensor(class_images(np.arange(8) % 4))
    assert extract_features(model, images, MEAN, STD, "cpu").shape == (8, 64)


# --------------------------------------------------------------------------- estimator accuracy

@pytest.mark.parametrize("dim, true_mi", [(1, 0.5), (2, 1.0), (5, 2.0)])
def test_gaussian_estimate_within_15_percent_of_truth(dim, true_mi):
    x, y = gaussians(true_mi, dim)
    result = estimator.estimate_mi(x, y, iters=1000, **SMALL)
    assert abs(result.estimate - true_mi) < 0.15 * true_mi
    assert result.iterations == 1000 and result.curve.shape == (1000,) and result.skipped_steps == 0
    assert result.smoothed()[-1].item() == pytest.approx(result.estimate, abs=1e-5)


def test_independent_variables_estimate_near_zero():
    x, y = gaussians(0.0, 2)
    result = estimator.estimate_mi(x, y, iters=600, **SMALL)
    assert -0.05 < result.estimate < 0.08


def test_ty_estimate_stays_below_log_classes():
    # T determines Y exactly (balanced, 4 classes), so I(T;Y) = H(Y) = log 4: the DV
    # bound must approach it from below and never exceed it by more than noise.
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(2000) % 4
    features = torch.eye(4)[labels] * 3 + 0.3 * torch.randn(2000, 4, generator=generator)
    result = estimator.estimate_mi(features, torch.eye(4)[labels], iters=800, **SMALL)
    assert 0.85 * math.log(4) < result.estimate < math.log(4) + 0.05


def test_ty_of_a_tiny_checkpoint_does_not_exceed_log_classes():
    torch.manual_seed(0)
    classes = 10
    labels = np.arange(600) % classes
    features = extract_features(models.build_model("resnet8", classes), class_images(labels), MEAN, STD, "cpu")
    one_hot = torch.eye(classes)[torch.as_tensor(labels)]
    result = estimator.estimate_mi(features, one_hot, iters=600, **SMALL)
    # The images carry a class signal, so the features tell something about Y.
    assert 0.1 < result.estimate < math.log(classes) + 0.05


# --------------------------------------------------------------------------- batched critics

def test_batched_critics_match_one_at_a_time():
    problems = [(0.5, 2), (2.0, 2)]
    pairs = [gaussians(mi, dim, seed=i) for i, (mi, dim) in enumerate(problems)]
    batched = estimator.estimate_mi_batched(torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs]),
                                       iters=700, seed=5, **SMALL)
    single = [estimator.estimate_mi(x, y, iters=700, seed=5, **SMALL) for x, y in pairs]
    for (true_mi, _), together, alone in zip(problems, batched, single):
        # The same initial critic and the same draws: the same numbers up to float rounding,
        # which 700 Adam steps amplify to ~1e-3 (another initial critic moves it by several %).
        assert together.estimate == pytest.approx(alone.estimate, rel=5e-3)
        assert abs(together.estimate - true_mi) < 0.15 * true_mi


def test_an_estimate_does_not_depend_on_the_checkpoints_batched_with_it():
    x = torch.randn(400, 6, generator=torch.Generator().manual_seed(0))
    t = torch.randn(3, 400, 4, generator=torch.Generator().manual_seed(1)) + x[:, :4]
    settings = dict(iters=200, lr=1e-3, batch_size=100, hidden_size=32, seed=5)
    three = estimator.estimate_mi_batched(x, t, **settings)
    last_two = estimator.estimate_mi_batched(x, t[1:], **settings)
    alone = estimator.estimate_mi(x, t[2], **settings)
    assert three[1].estimate == pytest.approx(last_two[0].estimate, rel=1e-5)
    assert three[2].estimate == pytest.approx(last_two[1].estimate, rel=1e-5) == pytest.approx(alone.estimate, rel=1e-5)
    assert abs(three[0].estimate - three[1].estimate) > 1e-3  # different checkpoints, different numbers


def test_shared_input_is_the_same_as_repeating_it():
    x, y = gaussians(1.0, 2)
    shared = estimator.estimate_mi_batched(x, torch.stack([y, y]), iters=300, seed=3, **SMALL)
    repeated = estimator.estimate_mi_batched(torch.stack([x, x]), torch.stack([y, y]), iters=300, seed=3, **SMALL)
    for a, b in zip(shared, repeated):
        assert torch.allclose(a.curve, b.curve, atol=1e-4)
    # Two copies with the same data follow the same curve: every copy starts from the same critic.
    assert torch.allclose(shared[0].curve, shared[1].curve, atol=1e-5)


def test_batches_pair_joint_rows_and_draw_without_replacement():
    rows = torch.arange(100, dtype=torch.float32)[:, None]
    generator = torch.Generator().manual_seed(0)
    a_rows, b_rows = estimator._draw_batches(rows, rows + 1000, 100, 40, generator)
    assert a_rows.shape == b_rows.shape == (80, 1)
    assert torch.equal(a_rows[:40] + 1000, b_rows[:40])        # joint: the same rows
    assert not torch.equal(a_rows[40:] + 1000, b_rows[40:])    # marginal: independent draws
    for draw in (a_rows[:40], a_rows[40:], b_rows[40:]):
        assert len(torch.unique(draw)) == 40
    some_rows = torch.arange(0, 100, 2)
    a_rows, b_rows = estimator._draw_batches(rows, rows + 1000, some_rows, 40, generator)
    assert set(a_rows.flatten().tolist()) | set((b_rows - 1000).flatten().tolist()) <= set(some_rows.tolist())


# --------------------------------------------------------------------------- robustness

def test_masked_adam_matches_torch_adam_and_skips_masked_copies():
    torch.manual_seed(0)
    start = torch.randn(3, 20)
    ours, grads, reference = start.clone(), torch.zeros(3, 20), torch.nn.Parameter(start.clone())
    masked, adam = estimator.MaskedAdam(ours, grads, 0.01), torch.optim.Adam([reference], lr=0.01)
    for step in range(4):
        grads.copy_(torch.randn(3, 20))
        reference.grad = grads.clone()
        masked.step(torch.ones(3, dtype=torch.bool))
        adam.step()
    assert torch.allclose(ours, reference, atol=1e-6)
    before, moments = ours.clone(), masked.exp_avg.clone()
    grads.copy_(torch.randn(3, 20))
    grads[1] = float("nan")
    grads[2, 0] = float("inf")
    taken = masked.step(torch.tensor([True, False, True]))
    assert taken.tolist() == [True, False, False]  # copy 2: finite loss flag, but a non-finite gradient
    for k in (1, 2):
        assert torch.equal(ours[k], before[k]) and torch.equal(masked.exp_avg[k], moments[k])
    assert not torch.equal(ours[0], before[0])
    assert masked.steps.tolist() == [5, 4, 4]


def test_critic_layers_are_views_of_one_buffer_and_gradients_land_in_it():
    critic = estimator.BatchedCritic(2, 3, 4, 5, torch.Generator().manual_seed(0))
    assert critic.flat_weights.shape == (2, 3 * 5 + 4 * 5 + 5 + 2 * (25 + 5) + 5 + 1)
    critic.w_2.data[1, 0, 0] = 7.0
    assert (critic.flat_weights[1] == 7.0).sum() == 1 and (critic.flat_weights[0] == 7.0).sum() == 0
    assert critic.b_1.abs().sum() == 0 and 0.01 < critic.w_a.std() < 0.04
    critic(torch.randn(6, 3), torch.randn(2, 6, 4))[1].sum().backward()
    assert critic.flat_grads[0].abs().sum() == 0 and critic.flat_grads[1].abs().sum() > 0
    assert critic.w_4.grad.data_ptr() == critic.flat_grads[0, -6:].data_ptr()
    critic.zero_grad()  # nn.Module's would set the gradients to None, cutting them loose from flat_grads
    assert critic.flat_grads.abs().sum() == 0 and critic.w_4.grad.data_ptr() == critic.flat_grads[0, -6:].data_ptr()


def test_nonfinite_rows_skip_steps_and_keep_the_moving_average_finite():
    x, y = gaussians(1.0, 2)
    x[7] = float("inf")  # every batch that draws row 7 gives a non-finite loss
    result = estimator.estimate_mi(x, y, iters=600, **SMALL)
    assert result.iterations == 600
    assert 0 < result.skipped_steps < 600
    assert math.isfinite(result.moving_average) and result.moving_average > 0
    assert torch.isnan(result.curve).sum() == result.skipped_steps
    assert abs(result.estimate - 1.0) < 0.2


def test_amp_runs_the_critic_in_bf16_on_any_device_and_bad_shapes_are_named():
    x, y = gaussians(1.0, 1, rows=300)
    full, amp = (estimator.estimate_mi(x, y, iters=10, amp=amp, **{**SMALL, "batch_size": 100}) for amp in (False, True))
    assert torch.isfinite(amp.curve).all() and not torch.equal(amp.curve, full.curve)
    assert torch.allclose(amp.curve, full.curve, rtol=0.1, atol=1e-4)  # the curve climbs from 0 to ~3e-3
    with pytest.raises(ValueError, match="batch size 256 exceeds"):
        estimator.estimate_mi(x[:200], y[:200], iters=10, **SMALL)
    with pytest.raises(ValueError, match="disagree"):
        estimator.estimate_mi_batched(torch.stack([x, x]), torch.stack([y, y, y]), iters=10, **SMALL)


# --------------------------------------------------------------------------- diagnostics

def noisy(values, seed=0):
    return torch.as_tensor(values, dtype=torch.float32) + 0.05 * torch.randn(len(values), generator=torch.Generator().manual_seed(seed))


def test_diagnostics_tell_converged_rising_and_diverging_apart():
    flat = estimator.convergence_diagnostics(noisy([1.0] * 2000), window=500)
    rising = estimator.convergence_diagnostics(noisy(np.linspace(0.2, 1.0, 2000)), window=500)
    falling = estimator.convergence_diagnostics(noisy(np.linspace(1.0, 0.5, 2000)), window=500)
    broken = noisy([1.0] * 2000)
    broken[-3] = float("nan")
    assert flat["status"] == "converged" and abs(flat["rel_change"]) < 0.02
    assert rising["status"] == "rising" and rising["rel_change"] > 0.1
    assert falling["status"] == "diverging" and falling["rel_change"] < -0.1
    assert estimator.convergence_diagnostics(broken, window=500)["status"] == "diverging"
    assert len(flat["window_means"]) == 4 and flat["window_means"][-1] == pytest.approx(1.0, abs=0.01)
    # +1% per window: flat between neighbours, but 4% over the last four windows.
    drifting = estimator.convergence_diagnostics(noisy(np.linspace(1.0, 1.1, 5000)), window=500)
    assert drifting["status"] == "rising" and drifting["span"] == 2000
    assert drifting["rel_change"] == pytest.approx(0.04 / 1.1, abs=0.005)
    # The row shows the two windows the trend compares, so the change can be read off it.
    means = drifting["window_means"]
    assert len(means) == estimator.TREND_SPAN + 1
    assert drifting["rel_change"] == pytest.approx((means[-1] - means[0]) / means[-1], rel=1e-4)
    assert estimator.window_trend(noisy(np.linspace(1.0, 1.1, 5000))[-1000:], 500)["trend"] == "flat"


def test_trailing_mean_ignores_skipped_steps():
    curve = torch.tensor([1.0, float("nan"), 3.0, 5.0, 7.0])
    assert estimator.trailing_mean(curve, 2).tolist() == [1.0, 1.0, 3.0, 4.0, 6.0]


def test_early_stop_ends_a_plateaued_run_and_is_off_by_default():
    x, y = gaussians(1.0, 2)
    stopped = estimator.estimate_mi(x, y, iters=4000, early_stop=True, **{**SMALL, "average_last": 150})
    assert stopped.iterations < 4000 and stopped.diagnostics["stopped_early"]
    assert stopped.iterations % 150 == 0
    assert abs(stopped.estimate - 1.0) < 0.15
    full = estimator.estimate_mi(x, y, iters=450, **{**SMALL, "average_last": 150})
    assert full.iterations == 450 and not full.diagnostics["stopped_early"]


def test_heldout_estimate_uses_rows_kept_out_of_training():
    train_rows, heldout_rows = estimator.split_rows(1000, 0.25, torch.Generator().manual_seed(0), "cpu")
    assert len(heldout_rows) == 250 and len(train_rows) == 750
    assert sorted(torch.cat((train_rows, heldout_rows)).tolist()) == list(range(1000))
    assert estimator.split_rows(1000, 0.0, torch.Generator(), "cpu") == (1000, None)
    x, y = gaussians(1.0, 2)
    result = estimator.estimate_mi(x, y, iters=700, eval_fraction=0.25, **SMALL)
    assert [done for done, _ in result.heldout_curve] == [200, 400, 600, 700]
    assert result.heldout_estimate == result.heldout_curve[-1][1]
    assert abs(result.heldout_estimate - 1.0) < 0.2 and result.diagnostics["overfitting"] is False
    assert 0.01 < result.diagnostics["heldout_noise"] < 0.3  # 500 held-out rows: a noisy bound
    assert result.diagnostics["heldout_gap"] == pytest.approx(result.estimate - result.heldout_estimate)
    plain = estimator.estimate_mi(x, y, iters=20, **SMALL)
    assert plain.heldout_estimate is None and plain.heldout_curve == [] and plain.diagnostics["overfitting"] is None


def test_the_jackknife_standard_error_by_hand():
    replicates = torch.tensor([[1.0, 2.0, 3.0, 6.0], [2.0, 2.0, 2.0, 2.0]])
    # mean 3, deviations -2 -1 0 3: sqrt(3/4 * 14); no spread: 0
    assert estimator.jackknife_stderr(replicates).tolist() == pytest.approx([math.sqrt(3 / 4 * 14), 0.0])


def test_an_overfitting_flag_needs_a_gap_beyond_the_heldout_noise():
    # A gap above OVERFIT_GAP of the estimate but within NOISE_SIGMAS standard errors is noise.
    assert estimator.heldout_diagnostics(1.0, [(100, 0.8)], heldout_noise=0.1)["overfitting"] is False
    assert estimator.heldout_diagnostics(1.0, [(100, 0.8)], heldout_noise=0.05)["overfitting"] is True


def test_a_critic_memorising_a_small_sample_is_flagged_as_overfitting():
    # Independent variables, 200 training rows, a fast lr: the training bound climbs far
    # above 0 while the bound on rows the critic never saw falls below it.
    x, y = gaussians(0.0, 2, rows=400)
    result = estimator.estimate_mi(x, y, iters=600, lr=3e-3, batch_size=100, hidden_size=64, average_last=100,
                              eval_fraction=0.5)
    assert result.estimate > 0.3 and result.heldout_estimate < 0
    assert result.diagnostics["overfitting"] is True
    assert result.diagnostics["heldout_peak"][1] == max(value for _, value in result.heldout_curve)


# --------------------------------------------------------------------------- calibration helpers

def test_gaussian_truth_and_sampler_agree():
    assert gaussian_mi(1, 0.5) == pytest.approx(-0.5 * math.log(0.75))
    assert gaussian_mi(3, rho_for_mi(1.7, 3)) == pytest.approx(1.7)
    x, y = correlated_gaussians(20000, 2, 0.6, generator=torch.Generator().manual_seed(0))
    correlation = np.corrcoef(x[:, 1].numpy(), y[:, 1].numpy())[0, 1]
    assert correlation == pytest.approx(0.6, abs=0.02) and y.std().item() == pytest.approx(1.0, abs=0.03)
