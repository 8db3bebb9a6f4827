"""CTC building blocks against SPEC section 6, with the arithmetic written out by hand."""
import math

import numpy as np
import pytest
import torch

from helper.ctc import ContrastMemory, CTCLoss, InstanceLoss, InstanceMemory, nce_loss

N_DATA, K, BATCH, DIM, T, MOMENTUM = 10, 3, 5, 4, 0.5, 0.7


def unit_rows(generator, rows, dim):
    x = torch.randn(rows, dim, generator=generator)
    return x / x.norm(dim=1, keepdim=True)


def example(seed=0):
    """Batch indices, K+1 contrast indices (positive first) and two normalised embeddings."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(N_DATA, generator=generator)[:BATCH]
    negatives = torch.randint(0, N_DATA, (BATCH, K), generator=generator)
    contrast_idx = torch.cat([index[:, None], negatives], dim=1)
    return (index, contrast_idx, unit_rows(generator, BATCH, DIM),
            unit_rows(generator, BATCH, DIM))


def hand_exp_scores(memory, v, contrast_idx):
    """exp(<row, v> / T) for every (sample, contrast row), one dot product at a time."""
    memory, v = memory.double().numpy(), v.double().numpy()
    out = np.zeros(contrast_idx.shape)
    for b in range(contrast_idx.shape[0]):
        for j, row in enumerate(contrast_idx[b].tolist()):
            dot = sum(memory[row, d] * v[b, d] for d in range(memory.shape[1]))
            out[b, j] = math.exp(dot / T)
    return out


def hand_nce(p):
    """SPEC formula, K = columns - 1, Pn = 1/N, written out term by term."""
    k = p.shape[1] - 1
    noise = k * (1.0 / N_DATA)
    total = 0.0
    for b in range(p.shape[0]):
        total += math.log(p[b, 0] / (p[b, 0] + noise + 1e-7))
        for j in range(1, k + 1):
            total += math.log(noise / (p[b, j] + noise + 1e-7))
    return -total / p.shape[0]


def hand_momentum(row, z):
    mixed = [MOMENTUM * m + (1 - MOMENTUM) * x for m, x in zip(row, z)]
    norm = math.sqrt(sum(x * x for x in mixed))
    return [x / norm for x in mixed]


def hand_embed(embed, features):
    weight = embed.linear.weight.detach().double().numpy()
    bias = embed.linear.bias.detach().double().numpy()
    out = []
    for f in features.double().numpy():
        y = [sum(weight[o, i] * f[i] for i in range(len(f))) + bias[o] for o in range(len(bias))]
        norm = math.sqrt(sum(x * x for x in y))
        out.append([x / norm for x in y])
    return np.array(out)


def test_nce_loss_on_literal_scores():
    # N = 10, K = 3: K * Pn = 0.3.
    p = torch.tensor([[0.5, 0.1, 0.2, 0.3], [0.05, 0.4, 0.0, 1.0]])
    expected = -(math.log(0.5 / (0.5 + 0.3 + 1e-7)) + math.log(0.3 / (0.1 + 0.3 + 1e-7))
                 + math.log(0.3 / (0.2 + 0.3 + 1e-7)) + math.log(0.3 / (0.3 + 0.3 + 1e-7))
                 + math.log(0.05 / (0.05 + 0.3 + 1e-7)) + math.log(0.3 / (0.4 + 0.3 + 1e-7))
                 + math.log(0.3 / (0.0 + 0.3 + 1e-7)) + math.log(0.3 / (1.0 + 0.3 + 1e-7))) / 2
    assert nce_loss(p, N_DATA).item() == pytest.approx(expected, rel=1e-6)


def test_ctc_loss_matches_hand_computation_and_fixes_z_once():
    torch.manual_seed(0)
    ctc = CTCLoss(6, 7, N_DATA, K, feat_dim=DIM, temperature=T, momentum=MOMENTUM)
    memory = ctc.contrast_memory
    generator = torch.Generator().manual_seed(1)
    for call in range(2):
        index, contrast_idx, _, _ = example(seed=call)
        f_student = torch.randn(BATCH, 6, generator=generator)
        f_infobank = torch.randn(BATCH, 7, generator=generator)
        v1 = torch.from_numpy(hand_embed(ctc.embed_student, f_student))
        v2 = torch.from_numpy(hand_embed(ctc.embed_infobank, f_infobank))
        exp_student = hand_exp_scores(memory.memory_infobank, v1, contrast_idx)
        exp_infobank = hand_exp_scores(memory.memory_student, v2, contrast_idx)
        if call == 0:
            assert memory.z_student.item() < 0 and memory.z_infobank.item() < 0
            z_student = exp_student.sum() / exp_student.size * N_DATA
            z_infobank = exp_infobank.sum() / exp_infobank.size * N_DATA
        expected = hand_nce(exp_student / z_student) + hand_nce(exp_infobank / z_infobank)

        loss = ctc(f_student, f_infobank, index, contrast_idx)

        assert loss.item() == pytest.approx(expected, rel=1e-5)
        # Second call: different inputs, same Z as fixed at the first call.
        assert memory.z_student.item() == pytest.approx(z_student, rel=1e-6)
        assert memory.z_infobank.item() == pytest.approx(z_infobank, rel=1e-6)


def test_contrast_scores_are_exp_dot_over_z_for_both_sides():
    torch.manual_seed(0)
    memory = ContrastMemory(DIM, N_DATA, K, temperature=T, momentum=MOMENTUM)
    memory.z_student.fill_(3.0)
    memory.z_infobank.fill_(5.0)
    index, contrast_idx, v1, v2 = example()
    expected_student = hand_exp_scores(memory.memory_infobank, v1, contrast_idx) / 3.0
    expected_infobank = hand_exp_scores(memory.memory_student, v2, contrast_idx) / 5.0

    scores_student, scores_infobank = memory(v1, v2, index, contrast_idx)

    np.testing.assert_allclose(scores_student.numpy(), expected_student, rtol=1e-5)
    np.testing.assert_allclose(scores_infobank.numpy(), expected_infobank, rtol=1e-5)


def assert_momentum_update(before, after, index, z):
    for row in range(N_DATA):
        if row in index.tolist():
            b = index.tolist().index(row)
            expected = hand_momentum(before[row].tolist(), z[b].tolist())
            np.testing.assert_allclose(after[row].numpy(), expected, rtol=1e-5, atol=1e-7)
            assert after[row].norm().item() == pytest.approx(1.0, abs=1e-6)
        else:
            assert torch.equal(after[row], before[row])


def test_contrast_memory_rows_follow_momentum_rule_without_gradient():
    torch.manual_seed(0)
    memory = ContrastMemory(DIM, N_DATA, K, temperature=T, momentum=MOMENTUM)
    index, contrast_idx, v1, v2 = example()
    v1.requires_grad_(True)
    v2.requires_grad_(True)
    before_student = memory.memory_student.clone()
    before_infobank = memory.memory_infobank.clone()

    scores_student, scores_infobank = memory(v1, v2, index, contrast_idx)
    (scores_student.sum() + scores_infobank.sum()).backward()

    assert_momentum_update(before_student, memory.memory_student, index, v1.detach())
    assert_momentum_update(before_infobank, memory.memory_infobank, index, v2.detach())
    assert not memory.memory_student.requires_grad and memory.memory_student.grad is None
    assert not memory.memory_infobank.requires_grad and memory.memory_infobank.grad is None
    # The gradient uses the rows as they were when scored, not the updated ones:
    # d/dv1 sum_j exp(<r_j, v1>/T)/Z = sum_j exp(<r_j, v1>/T) r_j / (T Z).
    z = memory.z_student.item()
    exp_scores = hand_exp_scores(before_infobank, v1.detach(), contrast_idx)
    rows = before_infobank[contrast_idx].double().numpy()
    expected_grad = np.einsum("bj,bjd->bd", exp_scores, rows) / (T * z)
    np.testing.assert_allclose(v1.grad.numpy(), expected_grad, rtol=1e-4)


def test_instance_loss_is_cross_entropy_and_updates_memory():
    torch.manual_seed(0)
    instance_loss = InstanceLoss(6, N_DATA, dim=DIM, temperature=T, momentum=MOMENTUM)
    instance_loss.projector.requires_grad_(False)  # the reference's untrained projector
    index = torch.tensor([7, 2, 9])
    feature = torch.randn(3, 6, requires_grad=True)
    before = instance_loss.memory.memory.clone()
    z = hand_embed(instance_loss.projector, feature.detach())
    memory_rows = before.double().numpy()
    expected = 0.0
    for b, target in enumerate(index.tolist()):
        logits = [sum(memory_rows[j, d] * z[b, d] for d in range(DIM)) / T for j in range(N_DATA)]
        expected -= logits[target] - math.log(sum(math.exp(s) for s in logits))
    expected /= len(index)

    loss = instance_loss(feature, index)
    loss.backward()

    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert_momentum_update(before, instance_loss.memory.memory, index, torch.from_numpy(z))
    # Gradients still reach the features through the frozen projector.
    assert feature.grad.abs().sum().item() > 0
    assert instance_loss.memory.memory.grad is None


def test_instance_logits_gradient_uses_rows_before_update():
    torch.manual_seed(0)
    memory = InstanceMemory(N_DATA, DIM, temperature=T, momentum=MOMENTUM)
    index = torch.tensor([0, 4])
    z = unit_rows(torch.Generator().manual_seed(3), 2, DIM).requires_grad_(True)
    weights = torch.randn(2, N_DATA)
    before = memory.memory.clone()

    logits = memory.logits(z)
    memory.update(index, z)
    (logits * weights).sum().backward()

    np.testing.assert_allclose(logits.detach().numpy(), (z.detach() @ before.T / T).numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(z.grad.numpy(), (weights @ before / T).numpy(), rtol=1e-5)
    assert_momentum_update(before, memory.memory, index, z.detach())


def test_memory_init_range():
    stdv = 1 / math.sqrt(128 / 3)
    torch.manual_seed(0)
    memories = [InstanceMemory(2000).memory, ContrastMemory(128, 2000, K).memory_student,
                ContrastMemory(128, 2000, K).memory_infobank]
    for memory in memories:
        assert memory.shape == (2000, 128)
        assert memory.abs().max().item() <= stdv
        # Uniform over the whole range: both ends are reached, mean near 0.
        assert memory.max().item() > 0.999 * stdv and memory.min().item() < -0.999 * stdv
        assert abs(memory.mean().item()) < 0.01 * stdv
        assert memory.std().item() == pytest.approx(stdv / math.sqrt(3), rel=0.01)


def test_state_dict_holds_memories_and_z_and_resume_continues_identically():
    torch.manual_seed(0)
    ctc = CTCLoss(6, 6, N_DATA, K, feat_dim=DIM, temperature=T, momentum=MOMENTUM)
    index, contrast_idx, _, _ = example()
    features = torch.randn(BATCH, 6)
    ctc(features, features, index, contrast_idx)
    state = ctc.state_dict()
    assert {"contrast_memory.memory_student", "contrast_memory.memory_infobank",
            "contrast_memory.z_student", "contrast_memory.z_infobank"} <= set(state)
    assert state["contrast_memory.z_student"].item() > 0
    assert "memory.memory" in InstanceLoss(6, N_DATA, dim=DIM).state_dict()

    torch.manual_seed(1)  # a different random init, overwritten by the state dict
    resumed = CTCLoss(6, 6, N_DATA, K, feat_dim=DIM, temperature=T, momentum=MOMENTUM)
    resumed.load_state_dict(state)
    index, contrast_idx, _, _ = example(seed=1)
    assert ctc(features, features, index, contrast_idx).item() == \
        resumed(features, features, index, contrast_idx).item()
    assert torch.equal(ctc.contrast_memory.memory_student, resumed.contrast_memory.memory_student)


def test_overwrite_memories_sets_exactly_the_named_rows():
    torch.manual_seed(0)
    ctc = CTCLoss(5, 5, N_DATA, K, feat_dim=DIM)
    memory = ctc.contrast_memory
    before_student = memory.memory_student.clone()
    before_infobank = memory.memory_infobank.clone()
    index = torch.tensor([1, 8, 3])
    f_infobank = torch.randn(3, 5)

    ctc.overwrite_memories(index, f_infobank)

    expected_student = hand_embed(ctc.embed_student, f_infobank)
    expected_infobank = hand_embed(ctc.embed_infobank, f_infobank)
    for row in range(N_DATA):
        if row in index.tolist():
            b = index.tolist().index(row)
            np.testing.assert_allclose(memory.memory_student[row].numpy(), expected_student[b],
                                       rtol=1e-5)
            np.testing.assert_allclose(memory.memory_infobank[row].numpy(), expected_infobank[b],
                                       rtol=1e-5)
        else:
            assert torch.equal(memory.memory_student[row], before_student[row])
            assert torch.equal(memory.memory_infobank[row], before_infobank[row])


def test_memories_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    ctc = CTCLoss(6, 6, N_DATA, K, feat_dim=DIM, temperature=T, momentum=MOMENTUM)
    index, contrast_idx, _, _ = example()
    features = torch.randn(BATCH, 6)
    reference = CTCLoss(6, 6, N_DATA, K, feat_dim=DIM, temperature=T, momentum=MOMENTUM)
    reference.load_state_dict(ctc.state_dict())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ctc(features, features, index, contrast_idx)
    assert loss.dtype == torch.float32
    assert ctc.contrast_memory.memory_student.dtype == torch.float32
    # Only the heads' Linear runs in bf16: the loss stays within bf16 rounding of fp32.
    assert loss.item() == pytest.approx(reference(features, features, index, contrast_idx).item(),
                                        rel=2e-2)


def test_contrast_idx_of_wrong_width_is_refused():
    memory = ContrastMemory(DIM, N_DATA, K)
    index, contrast_idx, v1, v2 = example()
    with pytest.raises(ValueError, match="contrast_idx"):
        memory(v1, v2, index, contrast_idx[:, :K])


def test_a_repeated_index_takes_its_first_occurrence_update():
    torch.manual_seed(0)
    memory = InstanceMemory(N_DATA, DIM, temperature=T, momentum=MOMENTUM)
    index = torch.tensor([3, 6, 3, 3])
    z = unit_rows(torch.Generator().manual_seed(2), 4, DIM)
    before = memory.memory.clone()
    memory.update(index, z)
    np.testing.assert_allclose(memory.memory[3].numpy(), hand_momentum(before[3].tolist(), z[0].tolist()), rtol=1e-5)
    np.testing.assert_allclose(memory.memory[6].numpy(), hand_momentum(before[6].tolist(), z[1].tolist()), rtol=1e-5)


def test_one_memory_refresh_pass_keeps_the_first_value_of_a_sample_met_again():
    torch.manual_seed(0)
    ctc = CTCLoss(5, 5, N_DATA, K, feat_dim=DIM)
    memory = ctc.contrast_memory
    written = torch.zeros(N_DATA, dtype=torch.bool)
    first, second = torch.randn(3, 5), torch.randn(2, 5)
    ctc.overwrite_memories(torch.tensor([4, 1, 4]), first, written)
    # as at the end of an epoch split over processes: sample 1 comes round again
    ctc.overwrite_memories(torch.tensor([1, 7]), second, written)
    expected = hand_embed(ctc.embed_student, torch.stack([first[0], first[1], second[1]]))
    for row, values in zip((4, 1, 7), expected):
        np.testing.assert_allclose(memory.memory_student[row].numpy(), values, rtol=1e-5)
    assert written.nonzero().flatten().tolist() == [1, 4, 7]
