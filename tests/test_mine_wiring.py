"""MINE wiring: the gradient the critic is trained with, and what mine.py feeds the estimator.

The estimator's accuracy is tested on problems of known MI (tests/test_mine.py), but an
estimate can land near the truth with a wrong gradient, and a script that pairs each
image with another image's features still gives a finite number. Here the gradient is
compared with SPEC 8 written out, step by step through a whole (tiny) run, and mine.py's
inputs row by row with an eval-mode pass written in the test, and its I(T;Y) of features
that give the label with the same estimate on shuffled pairs.
"""
import math

import pytest
import torch
from torch.func import functional_call

import helper.features
import mine
import util
from helper.mine import critic as estimator
from helper.results import read_results
from helper.run import checkpoint_path
from models import build_model
from tests import fakedata

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)  # CIFAR-10's, as the reference (SPEC 4)


def spec_loss(critic_out, batch_size, ma):
    """SPEC 8 for one critic: joint rows first, then marginal rows. The moving average is
    updated first, ma <- 0.99 ma + 0.01 mean(exp T_marg), and the loss is
    -(mean T_joint - log(mean exp T_marg) * mean(exp T_marg).detached / ma.detached).
    Returns (loss, DV bound, new ma)."""
    joint, marginal = critic_out[:batch_size], critic_out[batch_size:]
    mean_exp = torch.exp(marginal).mean()
    ma = 0.99 * ma + 0.01 * mean_exp.detach()
    loss = -(joint.mean() - torch.log(mean_exp) * mean_exp.detach() / ma.detach())
    return loss, joint.mean() - torch.log(mean_exp), ma


def leaves(critic):
    return {name: p.detach().clone().requires_grad_() for name, p in critic.named_parameters()}


# --------------------------------------------------------------------------- the gradient

def test_dv_step_gives_the_spec_gradient_and_moving_average_per_critic():
    batch = 6
    generator = torch.Generator().manual_seed(0)
    critic = estimator.BatchedCritic(2, 3, 2, 4, generator)
    weights = leaves(critic)
    a, b = torch.randn(2 * batch, 3, generator=generator), torch.randn(2, 2 * batch, 2, generator=generator)
    # Offsets move mean(exp T_marg) away from the moving average, where the correction matters.
    offset = torch.tensor([[1.5], [-0.7]])
    log_ma, ma = torch.zeros(2), [torch.tensor(1.0), torch.tensor(1.0)]
    for iteration in range(3):
        critic_out = functional_call(critic, weights, (a, b)) + offset
        bound, loss, log_ma = estimator._dv_step(critic_out, batch, log_ma)
        ours = torch.autograd.grad(loss.sum(), list(weights.values()), retain_graph=True)
        for k in range(2):
            expected_loss, expected_bound, ma[k] = spec_loss(critic_out[k], batch, ma[k])
            expected = torch.autograd.grad(expected_loss, list(weights.values()), retain_graph=True)
            uncorrected = torch.autograd.grad(-expected_bound, list(weights.values()), retain_graph=True)
            for name, mine_grad, spec_grad, plain_grad in zip(weights, ours, expected, uncorrected):
                # copy k of every weight holds critic k: only its own loss reaches it
                torch.testing.assert_close(mine_grad[k], spec_grad[k], rtol=1e-5, atol=1e-7, msg=name)
                assert spec_grad[1 - k].abs().sum() == 0
            # without the correction the gradient is measurably different: the test can tell
            assert max(float((e[k] - u[k]).abs().max()) for e, u in zip(expected, uncorrected)) > 1e-3
            assert float(bound[k].detach()) == pytest.approx(float(expected_bound.detach()), rel=1e-5, abs=1e-6)
            assert float(log_ma[k].exp()) == pytest.approx(float(ma[k]), rel=1e-6)
        with torch.no_grad():  # move on, so that the next iteration starts elsewhere
            for weight, grad in zip(weights.values(), expected):
                weight -= 0.5 * grad
        a = a.roll(1, 0)


def test_a_whole_run_trains_each_critic_with_adam_on_the_spec_gradient(monkeypatch):
    """Every iteration of estimate_mi_batched, replayed by hand: the critic's inputs are
    recorded as it sees them, the hand replay computes the SPEC loss with its own moving
    average and steps torch.optim.Adam; weights, bounds and the average must agree."""
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(40, 3, generator=generator)
    b = torch.stack([a[:, :2] + 0.3 * torch.randn(40, 2, generator=generator), 2 * a[:, 1:]])  # two critics
    seen = []
    forward = estimator.BatchedCritic.forward

    def recording(critic, a_rows, b_rows):
        seen.append((critic, {name: p.detach().clone() for name, p in critic.named_parameters()},
                     a_rows.clone(), b_rows.clone()))
        return forward(critic, a_rows, b_rows)
    monkeypatch.setattr(estimator.BatchedCritic, "forward", recording)
    batch, lr, iters = 8, 0.05, 6
    results = estimator.estimate_mi_batched(a, b, iters=iters, lr=lr, batch_size=batch, hidden_size=4,
                                            average_last=3, seed=0)
    monkeypatch.undo()  # the replay below calls the critic too
    assert len(seen) == iters and all(entry[0] is seen[0][0] for entry in seen)
    critic = seen[0][0]

    def replay(corrected):
        weights = {name: value.clone().requires_grad_() for name, value in seen[0][1].items()}
        adam = torch.optim.Adam(list(weights.values()), lr=lr)
        ma, bounds, matches = [torch.tensor(1.0)] * 2, [], []
        for _, recorded, a_rows, b_rows in seen:
            matches.append(all(torch.allclose(weights[n], recorded[n], rtol=1e-4, atol=2e-5) for n in weights))
            critic_out = functional_call(critic, weights, (a_rows, b_rows))
            total, step_bounds = 0.0, []
            for k in range(2):
                loss, bound, ma[k] = spec_loss(critic_out[k], batch, ma[k])
                total = total + (loss if corrected else -bound)
                step_bounds.append(float(bound.detach()))
            adam.zero_grad()
            total.backward()
            adam.step()
            bounds.append(step_bounds)
        final = all(torch.allclose(weights[n], p, rtol=1e-4, atol=2e-5) for n, p in critic.named_parameters())
        return matches + [final], bounds, ma

    matches, bounds, ma = replay(corrected=True)
    assert all(matches), matches
    for k, result in enumerate(results):
        assert result.curve.tolist() == pytest.approx([step[k] for step in bounds], rel=1e-5, abs=1e-6)
        assert result.moving_average == pytest.approx(float(ma[k]), rel=1e-5)
    # The plain DV gradient (no moving-average correction) drifts away from the recorded run.
    assert not all(replay(corrected=False)[0])


# --------------------------------------------------------------------------- mine.py's data

RUN = "resnet8_cifar10_lr_0.05_trial_0_vanilla"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """./data: a fake CIFAR-10 with a 200-image test split; a run folder with resnet8 (10
    classes, random weights) checkpoints of epochs 2 and 4. The fake classes differ in colour
    and stripes, so even random features tell the class of an image (I(T;Y) near log 10)."""
    sets = fakedata.write_cifar10(tmp_path / "data", n_train=10, n_test=200, seed=0)
    for epoch in (2, 4):
        torch.manual_seed(epoch)
        util.atomic_save({"epoch": epoch, "model": build_model("resnet8", 10).state_dict(), "accuracy": 1.0},
                         checkpoint_path(tmp_path / "save" / "model" / RUN, epoch))
    monkeypatch.chdir(tmp_path)
    return tmp_path, sets["test"]


def hand_inputs(workdir, epoch):
    """(normalised images [N, 3, 32, 32], eval-mode pooled features, labels) of a checkpoint, by hand."""
    folder, (images, labels) = workdir
    x = (torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255 - torch.tensor(MEAN)[:, None, None]) \
        / torch.tensor(STD)[:, None, None]
    model = build_model("resnet8", 10)
    model.load_model(checkpoint_path(folder / "save" / "model" / RUN, epoch))
    with torch.no_grad():
        features = model.eval()(x, is_feat=True)[0][-1]
    return x, features, torch.as_tensor(labels)


def script_args(mode, *extra):
    return ["--mode", mode, "--model", "resnet8", "--dataset", "cifar10", "--source_dataset", "cifar10",
            "--ckpt_path", RUN, "--start_epoch", "2", "--skip", "2", "--batch_size", "64", "--hidden_size", "32",
            "--device", "cpu", *extra]


@pytest.mark.parametrize("mode", ["xt", "ty"])
def test_mine_pairs_each_image_with_its_own_features_and_label(workdir, monkeypatch, mode):
    calls = []
    real = mine.critic.estimate_mi_batched

    def recording(a, b, **options):
        calls.append((a.clone(), b.clone()))
        return real(a, b, **options)
    monkeypatch.setattr(mine.critic, "estimate_mi_batched", recording)
    mine.main(script_args(mode, "--iter_num", "2"))
    (a, b), = calls
    x, features = zip(*(hand_inputs(workdir, epoch)[:2] for epoch in (2, 4)))
    labels = hand_inputs(workdir, 2)[2]
    features = torch.stack(features)
    if mode == "xt":   # X: the flattened normalised image; T: its features, row for row
        torch.testing.assert_close(a, x[0].flatten(1), rtol=0, atol=1e-5)
        torch.testing.assert_close(b, features, rtol=1e-4, atol=1e-4)
    else:              # T, then Y one-hot, row for row
        torch.testing.assert_close(a, features, rtol=1e-4, atol=1e-4)
        assert torch.equal(b, torch.eye(10)[labels])


def test_ty_of_features_that_give_the_label_is_near_log_classes_and_far_above_shuffled_pairs(workdir):
    settings = dict(iters=600, lr=1e-3, batch_size=64, hidden_size=32, seed=0)
    mine.main(script_args("ty", "--iter_num", str(settings["iters"]), "--lr", str(settings["lr"]),
                          "--start_epoch", "4"))
    row, = read_results(workdir[0] / "save" / "model" / RUN / "mine_ty_cifar10.jsonl")
    _, features, labels = hand_inputs(workdir, 4)
    one_hot = torch.eye(10)[labels]
    shuffled = one_hot[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    baseline = estimator.estimate_mi_batched(features, shuffled, **settings)[0].estimate
    # H(Y) = log 10 = 2.30 nats; the same critic on shuffled pairs measures ~0.
    assert 0.7 * math.log(10) < row["estimate"] < math.log(10) + 0.05
    assert abs(baseline) < 0.15 * math.log(10)


def test_amp_runs_the_features_and_the_critic_in_bf16(workdir, monkeypatch):
    convolutions, critic_passes = [], []
    build = helper.features.build_model  # where mine.py's checkpoints are built

    def watched_build_model(*args, **kwargs):
        model = build(*args, **kwargs)
        model.conv1.register_forward_hook(lambda module, inputs, output: convolutions.append(
            (output.dtype, module.weight.is_contiguous(memory_format=torch.channels_last))))
        return model
    monkeypatch.setattr(helper.features, "build_model", watched_build_model)
    forward = estimator.BatchedCritic.forward

    def watched_forward(critic, a_rows, b_rows):
        output = forward(critic, a_rows, b_rows)
        critic_passes.append(output.dtype)
        return output
    monkeypatch.setattr(estimator.BatchedCritic, "forward", watched_forward)
    for flags, dtype, channels_last in ((["--amp"], torch.bfloat16, True), ([], torch.float32, False)):
        convolutions.clear()
        critic_passes.clear()
        mine.main(script_args("ty", "--iter_num", "3", "--results", f"amp{bool(flags)}.jsonl", *flags))
        assert convolutions and set(convolutions) == {(dtype, channels_last)}, flags
        assert critic_passes == [dtype] * 3, flags
