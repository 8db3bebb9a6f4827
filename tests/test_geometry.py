"""The closed-form measures (helper/geometry/measures.py), the noisy-feature information
(helper/geometry/information.py) and its problems of known answer (helper/geometry/calibration.py).

Measures are checked against values worked out by hand on features built for the purpose;
the information against its defining sums written out row by row, against the Gaussian
truth D/2 log(1 + 1/s^2), and against what must hold whatever the features: bounds that
bracket it, I(T_s;Y) <= I(X;T_s), log C for classes far apart, 0 for classes alike.
Every problem is a few hundred rows at most, so the file runs in a few seconds.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from helper.geometry import calibration
from helper.geometry.information import feature_scale, noisy_information
from helper.geometry.measures import (class_separation, cdnv, effective_rank, feature_norm, measures, nc1)

pytestmark = pytest.mark.usefixtures("one_thread")


def hadamard(order):
    """Sylvester's Hadamard matrix: orthogonal columns of norm sqrt(order); every column but the first sums to 0."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while len(h) < order:
        h = torch.cat((torch.cat((h, h), 1), torch.cat((h, -h), 1)))
    return h


def with_singular_values(values, rows=8, rotation_seed=0):
    """Features [rows, len(values)] whose mean is 0 and whose singular values are `values`:
    zero-sum orthogonal columns with those norms, turned by a random rotation."""
    columns = hadamard(rows)[:, 1:len(values) + 1] / math.sqrt(rows) * torch.tensor(values, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(len(values), len(values), dtype=torch.float64,
                                              generator=torch.Generator().manual_seed(rotation_seed)))
    return columns @ rotation


def two_classes_2d(a=2.0, b=1.0):
    """Class 0 at (-a, +-b), class 1 at (+a, +-b)."""
    features = torch.tensor([[-a, b], [-a, -b], [a, b], [a, -b]], dtype=torch.float64)
    return features, torch.tensor([0, 0, 1, 1])


def two_classes_3d(a=2.0, b=1.0, c=3.0, e=5.0):
    """Class means -+a e_0; within each class the rows are the mean +-(b, c, e)."""
    offset = torch.tensor([b, c, e], dtype=torch.float64)
    mean = torch.tensor([a, 0.0, 0.0], dtype=torch.float64)
    features = torch.stack([-mean + offset, -mean - offset, mean + offset, mean - offset])
    return features, torch.tensor([0, 0, 1, 1])


# --------------------------------------------------------------------------- effective rank

def test_effective_rank_is_exp_of_the_entropy_of_the_normalised_singular_values():
    # Singular values 4, 2, 1, 1 sum to 8: p = 1/2, 1/4, 1/8, 1/8, entropy
    # 1/2 ln 2 + 1/4 ln 4 + 2 * 1/8 ln 8 = (1/2 + 1/2 + 3/4) ln 2 = 1.75 ln 2, so 2^1.75 = 3.3636.
    # (From squared singular values, p = 16, 4, 1, 1 over 22: 2.49.)
    features = with_singular_values([4.0, 2.0, 1.0, 1.0])
    assert effective_rank(features) == pytest.approx(2 ** 1.75, rel=1e-9)
    # The features' mean is removed first: an offset shared by every row changes nothing.
    assert effective_rank(features + torch.tensor([5.0, -3.0, 1.0, 7.0], dtype=torch.float64)) == pytest.approx(
        2 ** 1.75, rel=1e-9)


def test_effective_rank_of_two_classes_by_hand():
    # Columns (-a, -a, a, a) and (b, -b, b, -b) are orthogonal and sum to 0: singular values
    # 2a = 4 and 2b = 2, p = 2/3, 1/3, entropy ln 3 - 2/3 ln 2, so exp = 3 / 2^(2/3) = 1.8899.
    features, _ = two_classes_2d()
    assert effective_rank(features) == pytest.approx(3 / 2 ** (2 / 3), rel=1e-9)


def test_isotropic_features_have_effective_rank_about_their_dimension():
    assert effective_rank(with_singular_values([3.0] * 6, rows=16)) == pytest.approx(6, rel=1e-9)
    gaussian = torch.randn(4000, 8, generator=torch.Generator().manual_seed(3))
    assert 7.95 < effective_rank(gaussian) <= 8  # measured 7.998


def test_collapsed_classes_have_nc1_and_cdnv_zero_and_effective_rank_at_most_classes_minus_one():
    generator = torch.Generator().manual_seed(0)
    classes, dim = 4, 16
    means = 3 * torch.randn(classes, dim, generator=generator)
    labels = torch.arange(40) % classes
    collapsed = means[labels]
    assert nc1(collapsed, labels) == 0 and cdnv(collapsed, labels) == 0
    # 4 points centred span 3 dimensions; the other singular values are rounding (~1e-15).
    assert 2.5 < effective_rank(collapsed) <= classes - 1 + 1e-9
    assert class_separation(collapsed, labels) == pytest.approx(1, abs=1e-12)
    # Nearly collapsed: spread 1e-3 against means ~3 apart gives NC1 and CDNV of order 1e-7.
    nearly = collapsed + 1e-3 * torch.randn(40, dim, generator=generator)
    assert 0 < nc1(nearly, labels) < 1e-5 and 0 < cdnv(nearly, labels) < 1e-6
    assert effective_rank(nearly) < classes - 1 + 0.01


# --------------------------------------------------------------------------- NC1, CDNV, R^2, norm

def test_nc1_inverts_sigma_b_on_its_range_only():
    # Means -+a e_0 (global mean 0): Sigma_B = (a^2 + a^2) / C e_0 e_0^T = a^2 e_0 e_0^T, rank 1 in
    # 3 dimensions. Within-class offsets +-(b, c, e): Sigma_W = (b, c, e)(b, c, e)^T. Only the range
    # e_0 counts: tr(Sigma_W Sigma_B^+) / C = b^2 / a^2 / 2 = 1 / 8; c and e (3 and 5, far larger
    # than b) would dominate any inverse that reached the null space.
    features, labels = two_classes_3d()
    assert nc1(features, labels) == pytest.approx(1 / 8, rel=1e-9)
    # Within-class spread orthogonal to the class means is no variability NC1 sees.
    assert nc1(*two_classes_2d()) == pytest.approx(0, abs=1e-12)


def test_cdnv_of_two_classes_by_hand():
    # Var_c = b^2 + c^2 + e^2 = 35 for both classes, ||mu_0 - mu_1||^2 = (2a)^2 = 16:
    # (35 + 35) / (2 * 16) = 35 / 16.
    assert cdnv(*two_classes_3d()) == pytest.approx(35 / 16, rel=1e-9)


def test_cdnv_averages_pairs_whose_values_differ_and_classes_of_unequal_size():
    # Means at x = 0, 1, 3; rows at +-v_c on the y axis, so Var_c = v_c^2 = 1, 0.25, 4 whatever
    # the class's size (4, 2 and 6 rows). Pairs: (1 + 0.25) / (2 * 1) = 0.625,
    # (1 + 4) / (2 * 9) = 5 / 18, (0.25 + 4) / (2 * 4) = 0.53125; their mean 0.478009.
    spec = [(0.0, 1.0, 4), (1.0, 0.5, 2), (3.0, 2.0, 6)]
    rows = [([x, sign * v], c) for c, (x, v, count) in enumerate(spec) for k in range(count)
            for sign in [(-1) ** k]]
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    features = torch.tensor([rows[i][0] for i in order], dtype=torch.float64)
    labels = torch.tensor([rows[i][1] for i in order])
    assert cdnv(features, labels) == pytest.approx((0.625 + 5 / 18 + 0.53125) / 3, rel=1e-9)


def test_class_separation_by_hand():
    # Unit rows (-+a, +-b) / r, r^2 = a^2 + b^2: class means (-+a / r, 0). Within: 1 - a^2 / r^2;
    # all pairs: the unit rows sum to 0, so 1 - 0. R^2 = 1 - b^2 / r^2 = a^2 / (a^2 + b^2) = 4 / 5.
    assert class_separation(*two_classes_2d()) == pytest.approx(4 / 5, rel=1e-9)
    # Each class pointing one way (at any length): 1. Classes made of the same directions: 0.
    one_way = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 0.5]])
    assert class_separation(one_way, torch.tensor([0, 0, 1, 1])) == pytest.approx(1, abs=1e-12)
    alike = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 1.0], [3.0, 0.0], [2.0, 0.0], [0.0, 5.0]])
    assert class_separation(alike, torch.tensor([0, 0, 1, 1, 1, 1])) == pytest.approx(0, abs=1e-12)


def kornblith_r2(features, labels):
    """R^2 from every pair of rows: 1 - mean over classes of the mean cosine distance within
    the class / mean over all pairs of classes (j, k) of the mean cosine distance between them."""
    unit = F.normalize(features.double(), dim=1)
    distance = 1 - unit @ unit.T
    classes = labels.unique()
    block = torch.stack([torch.stack([distance[labels == j][:, labels == k].mean() for k in classes])
                         for j in classes])
    return float(1 - block.diagonal().mean() / block.mean())


def test_class_separation_weighs_every_class_equally_whatever_its_size():
    # Class 0: (3, 0) and (0, 0.5), unit (1, 0) and (0, 1), mean (1/2, 1/2); class 1: four rows
    # (-2, 0), mean (-1, 0). Within: 1 - (1/2 + 1) / 2 = 1/4; all pairs: 1 - ||(-1/4, 1/4)||^2 = 7/8;
    # R^2 = 1 - (1/4) / (7/8) = 5/7. (Weighting rows, not classes: 1 - (1/6) / (13/18) = 10/13.)
    features = torch.tensor([[3.0, 0.0], [-2.0, 0.0], [-2.0, 0.0], [0.0, 0.5], [-2.0, 0.0], [-2.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0, 1, 1])
    assert class_separation(features, labels) == pytest.approx(5 / 7, rel=1e-9)
    assert kornblith_r2(features, labels) == pytest.approx(5 / 7, rel=1e-9)
    # And on features with no structure worked out: the class-mean shortcut is the pairwise formula.
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(3, (50,), generator=generator)
    features = torch.randn(50, 5, generator=generator) + torch.eye(3, 5)[labels]
    assert class_separation(features, labels) == pytest.approx(kornblith_r2(features, labels), rel=1e-9)


def test_feature_norm_is_the_mean_norm_of_the_features_as_they_are():
    # Rows (3, 4) and (6, 8): norms 5 and 10. (Centred first, both would be 2.5.)
    assert feature_norm(torch.tensor([[3.0, 4.0], [6.0, 8.0]])) == pytest.approx(7.5)
    # (-1, 3, 5), (-3, -3, -5), (3, 3, 5), (1, -3, -5): sqrt(35) twice and sqrt(43) twice.
    assert feature_norm(two_classes_3d()[0]) == pytest.approx((math.sqrt(35) + math.sqrt(43)) / 2, rel=1e-12)


def test_rescaled_features_change_only_the_feature_norm():
    generator = torch.Generator().manual_seed(2)
    labels = torch.arange(60) % 3
    features = torch.randn(60, 6, generator=generator) + 2 * torch.eye(3, 6)[labels]
    plain, scaled = measures(features, labels), measures(7.3 * features, labels)
    assert set(plain) == {"effective_rank", "nc1", "cdnv", "class_separation", "feature_norm"}
    for key in ("effective_rank", "nc1", "cdnv", "class_separation"):
        assert scaled[key] == pytest.approx(plain[key], rel=1e-5), key
    assert scaled["feature_norm"] == pytest.approx(7.3 * plain["feature_norm"], rel=1e-6)


# --------------------------------------------------------------------------- information: the defining sums

def by_definition(features, labels, noise, seed):
    """The module docstring's sums in float64, row by row, with the noise of row i the i-th row
    of torch.randn(N, D) drawn from `seed`, used as +z and -z (antithetic), and sigma = noise
    times the features' root mean square distance to their mean. A dict of per-level means."""
    t = features.double() - features.double().mean(0)
    n, dim = t.shape
    sigma = noise * float(t.pow(2).sum(1).mean().sqrt())
    z = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).double()
    log_n = math.log(n)
    terms = {"i_xt": [], "i_ty": [], "i_ty_heldout": [], "i_xt_lower": [], "i_xt_upper": []}
    for i in range(n):
        own = labels == labels[i]
        others = torch.arange(n) != i
        log_prior = math.log(int(own.sum()) / n)
        xt = ty = heldout = 0.0
        for sign in (1, -1):
            u = t[i] + sign * sigma * z[i]
            log_phi = -((u - t) ** 2).sum(1) / (2 * sigma ** 2)  # log N(u; t_j, sigma^2 I) up to a constant
            everything, in_class = torch.logsumexp(log_phi, 0), torch.logsumexp(log_phi[own], 0)
            xt += float(log_n - everything + log_phi[i]) / 2
            ty += float(in_class - everything - log_prior) / 2
            # q(y_i | u_i) from every row but i
            heldout += float(torch.logsumexp(log_phi[own & others], 0) - torch.logsumexp(log_phi[others], 0)
                             - log_prior) / 2
        distance = ((t[i] - t) ** 2).sum(1)
        for key, value in ((
                "i_xt", xt), ("i_ty", ty), ("i_ty_heldout", heldout),
                ("i_xt_lower", float(log_n - torch.logsumexp(-distance / (8 * sigma ** 2), 0))),
                ("i_xt_upper", float(log_n - torch.logsumexp(-distance / (2 * sigma ** 2), 0)))):
            terms[key].append(value)
    found = {key: sum(values) / n for key, values in terms.items()}
    found["sigma"] = sigma
    for key in ("i_xt", "i_ty"):
        found[f"{key}_stderr"] = float(torch.tensor(terms[key]).std() / math.sqrt(n))
    return found


def test_every_number_is_the_defining_sum_with_the_rows_in_any_class_order():
    # Classes of 11, 8 and 5 rows, their rows interleaved, and blocks of 4 rows: a class's
    # rows span blocks and no block holds a whole class. Noise levels where the pairs' terms
    # matter (sigma near the distances) and where the linear drift term dominates.
    generator = torch.Generator().manual_seed(5)
    labels = torch.tensor([0] * 11 + [1] * 8 + [2] * 5)[torch.randperm(24, generator=generator)]
    features = torch.randn(24, 3, generator=generator) + 1.5 * torch.eye(3)[labels] + 4.0
    levels = [0.2, 0.6, 3.0]
    found = noisy_information(features.float(), labels, levels, seed=11, block_rows=4)
    assert [level.noise for level in found] == levels
    for level, s in zip(found, levels):
        expected = by_definition(features.float(), labels, s, seed=11)
        assert level.rows == 24
        for key, value in expected.items():
            assert getattr(level, key) == pytest.approx(value, rel=2e-4, abs=2e-5), (s, key)
    assert 0 < found[2].i_xt < found[1].i_xt < found[0].i_xt  # the levels are not one level thrice


def test_one_block_and_many_blocks_give_the_same_numbers():
    # Classes of 37, 23 and 40 rows: blocks of 16 end inside every class and a class's last block
    # is short; the class slices must stay those of the rows' own class.
    generator = torch.Generator().manual_seed(6)
    labels = torch.tensor([0] * 37 + [1] * 23 + [2] * 40)[torch.randperm(100, generator=generator)]
    features = torch.randn(100, 5, generator=generator) + 2 * torch.eye(3, 5)[labels]
    whole = noisy_information(features, labels, [0.3, 1.0], block_rows=1024)
    for block_rows in (16, 7):
        for one, other in zip(whole, noisy_information(features, labels, [0.3, 1.0], block_rows=block_rows)):
            for key, value in one.row().items():
                assert getattr(other, key) == pytest.approx(value, rel=1e-5, abs=1e-6), (block_rows, key)


# --------------------------------------------------------------------------- information: known answers

@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_calibration_at_small_size_is_within_six_percent(seed):
    # D = 4, N = 1000, absolute noise s = 1 and 2: truths D/2 log(1 + 1/s^2) = 2 ln 2 = 1.386 and
    # 2 ln 1.25 = 0.446, below log(N)/2 = 3.45. Over seeds 0..11 the error stays within about 5%;
    # sigma off by a factor sqrt(2) would be 40% off. s = 1/4 (truth 2 ln 17 = 5.67) is out of range.
    rows = calibration.gaussian_rows(4, 1000, [1.0, 2.0, 0.25], seed=seed)
    assert [row["true_mi"] for row in rows] == pytest.approx([2 * math.log(2), 2 * math.log(1.25), 2 * math.log(17)])
    for row in rows[:2]:
        assert abs(row["estimate"] - row["true_mi"]) < 0.06 * row["true_mi"], row
        assert row["in_range"] and row["within_tolerance"]
        # The Kolchinsky-Tracey bounds bracket the sample mixture's value the estimate is of.
        assert row["pairwise_lower"] < row["estimate"] < row["pairwise_upper"]
    assert not rows[2]["in_range"]
    # Out of range the sample mixture's value, at most log N, reads below the population's.
    assert rows[0]["estimate"] < rows[2]["estimate"] < rows[2]["true_mi"] and rows[2]["estimate"] <= math.log(1000)


def test_antithetic_draws_cancel_the_linear_term_at_large_noise():
    # At s = 8 (truth 2 ln(1 + 1/64) = 0.0310) a row's term is mostly the part linear in its draw z,
    # of mean 0, which cancels between +z and -z. Measured: standard error 5% of the truth; with
    # both draws of one sign, 38%.
    row = calibration.gaussian_rows(4, 500, [8.0], seed=1)[0]
    assert row["stderr"] < 0.1 * row["true_mi"] and abs(row["estimate"] - row["true_mi"]) < 0.1 * row["true_mi"]


def test_relative_noise_is_in_units_of_the_features_root_mean_square_distance_to_their_mean():
    # (-+2, +-1): every row at distance sqrt(5) from the mean (0, 0); with an offset, the same.
    features = two_classes_2d()[0] + torch.tensor([10.0, -4.0], dtype=torch.float64)
    assert feature_scale(features) == pytest.approx(math.sqrt(5), rel=1e-9)
    relative, absolute = (noisy_information(features, None, [0.5], relative=flag)[0] for flag in (True, False))
    assert relative.sigma == pytest.approx(0.5 * math.sqrt(5), rel=1e-6) and absolute.sigma == 0.5
    assert relative.i_ty is None and relative.i_ty_heldout is None  # no labels, no I(T_s;Y)


def test_a_rescaled_copy_gives_the_same_numbers_with_relative_noise():
    generator = torch.Generator().manual_seed(7)
    labels = torch.arange(120) % 4
    features = torch.randn(120, 6, generator=generator) + 1.5 * torch.eye(4, 6)[labels]
    plain = noisy_information(features, labels, [0.25, 0.5, 1.0], seed=3)
    scaled = noisy_information(37.5 * features, labels, [0.25, 0.5, 1.0], seed=3)
    for one, other in zip(plain, scaled):
        assert other.sigma == pytest.approx(37.5 * one.sigma, rel=1e-6)
        for key in ("i_xt", "i_xt_stderr", "i_xt_lower", "i_xt_upper", "i_ty", "i_ty_stderr", "i_ty_heldout"):
            assert getattr(other, key) == pytest.approx(getattr(one, key), rel=1e-4, abs=1e-6), key
    # Another seed draws other noise: the numbers move by about a standard error, so the
    # agreement above is the same draws, not an estimator that ignores them.
    other_seed = noisy_information(features, labels, [0.5], seed=4)[0]
    assert abs(other_seed.i_xt - plain[1].i_xt) > 1e-3


def test_the_draws_are_shared_by_features_on_the_same_rows():
    # Two checkpoints measured with one seed use the same draws: features that barely differ give
    # numbers that barely differ (a paired comparison), far closer than their standard errors.
    generator = torch.Generator().manual_seed(8)
    labels = torch.arange(200) % 5
    features = torch.randn(200, 8, generator=generator) + torch.eye(5, 8)[labels]
    nudged = features + 1e-4 * torch.randn(200, 8, generator=generator)
    for one, other in zip(noisy_information(features, labels, [0.5, 1.0], seed=2),
                          noisy_information(nudged, labels, [0.5, 1.0], seed=2)):
        assert abs(one.i_xt - other.i_xt) < 0.01 * one.i_xt_stderr
        assert abs(one.i_ty - other.i_ty) < 0.01 * one.i_ty_stderr


def test_row_order_changes_only_which_draw_a_row_gets():
    # The draws go with the row index, so a permutation of the rows redraws every row's noise:
    # the estimates move within their noise; the pairwise bounds, which have no draws, do not move.
    generator = torch.Generator().manual_seed(9)
    labels = torch.arange(300) % 3
    features = torch.randn(300, 4, generator=generator) + 2 * torch.eye(3, 4)[labels]
    order = torch.randperm(300, generator=generator)
    for one, other in zip(noisy_information(features, labels, [0.5, 1.0]),
                          noisy_information(features[order], labels[order], [0.5, 1.0])):
        assert other.i_xt_lower == pytest.approx(one.i_xt_lower, rel=1e-5)
        assert other.i_xt_upper == pytest.approx(one.i_xt_upper, rel=1e-5)
        assert other.sigma == pytest.approx(one.sigma, rel=1e-6)
        assert abs(other.i_xt - one.i_xt) < 4 * math.hypot(one.i_xt_stderr, other.i_xt_stderr)
        assert abs(other.i_ty - one.i_ty) < 4 * math.hypot(one.i_ty_stderr, other.i_ty_stderr)


def test_bounds_bracket_the_estimate_and_held_out_and_dpi_orders_hold():
    generator = torch.Generator().manual_seed(10)
    labels = torch.randint(4, (400,), generator=generator)
    features = torch.randn(400, 6, generator=generator) + 1.2 * torch.eye(4, 6)[labels]
    found = noisy_information(features, labels, [0.1, 0.25, 0.5, 1.0, 2.0])
    for level in found:
        assert level.i_xt_lower <= level.i_xt <= level.i_xt_upper
        # Leaving the row's own term out only lowers q(y_i | u_i): strictly, row by row.
        assert level.i_ty_heldout < level.i_ty
        # I(T_s;Y) <= I(X;T_s): their difference estimates I(X;T_s|Y) >= 0 with the same draws.
        assert level.i_ty <= level.i_xt + 2 * level.i_xt_stderr
        assert 0 <= level.i_xt <= math.log(400) and level.i_ty <= math.log(4) + 2 * level.i_ty_stderr
        assert level.saturated == (level.i_xt > math.log(400) / 2)
    assert found[0].saturated and not found[-1].saturated
    # More noise, less information.
    assert all(a.i_xt > b.i_xt and a.i_ty > b.i_ty for a, b in zip(found, found[1:]))


def test_point_classes_far_apart_give_log_c_for_both_and_close_together_equal_numbers():
    # Every class a single point: the noise of a row can only be confused with its class's own
    # point, so within a class the exponents are all 0 and own = log N_c exactly: the per-row
    # I(X;T_s) and I(T_s;Y) terms are equal. Far apart (the closest two points 15 sigma apart):
    # log N - log N_c = log C for both, and the held-out value too (the other rows of the class
    # sit on the same point).
    generator = torch.Generator().manual_seed(11)
    classes = 5
    labels = torch.arange(50) % classes
    points = torch.randn(classes, 8, generator=generator)[labels]
    far = noisy_information(points, labels, [0.05])[0]
    assert torch.pdist(points.unique(dim=0)).min() > 15 * far.sigma
    # (within a class the float32 distances are 0 up to rounding, here ~1e-5 nats)
    assert far.i_xt == pytest.approx(math.log(classes), abs=1e-4)
    assert far.i_ty == pytest.approx(math.log(classes), abs=1e-5)
    assert far.i_ty_heldout == pytest.approx(math.log(classes), abs=1e-5)
    for close in noisy_information(points, labels, [0.3, 1.0, 3.0]):
        assert 0 < close.i_ty < math.log(classes) - 0.01
        assert close.i_ty == pytest.approx(close.i_xt, rel=1e-6, abs=1e-7)


def test_classes_with_the_same_distribution_give_i_ty_about_zero():
    # Labels drawn independently of the features: I(T_s;Y) = 0. The sample mixture's value reads
    # a little high, the held-out one a little low; at s = 1 the truth of I(X;T_s) is far from log N.
    generator = torch.Generator().manual_seed(12)
    features = torch.randn(500, 4, generator=generator)
    labels = torch.randint(4, (500,), generator=generator)
    level = noisy_information(features, labels, [1.0], seed=1)[0]
    assert level.i_xt > 0.3 and abs(level.i_ty) < 0.02 and -0.05 < level.i_ty_heldout <= level.i_ty


def test_a_class_of_one_row_gives_i_ty_but_no_held_out_value():
    # A row alone in its class has no other row to guess its label from.
    generator = torch.Generator().manual_seed(13)
    labels = torch.tensor([0] * 10 + [1] * 10 + [2])
    features = torch.randn(21, 3, generator=generator) + 3 * torch.eye(3)[labels]
    level, = noisy_information(features, labels, [0.5])
    assert level.i_ty_heldout is None and math.isfinite(level.i_ty) and 0 < level.i_ty <= level.i_xt
    assert noisy_information(features[:20], labels[:20], [0.5])[0].i_ty_heldout is not None


def test_features_all_equal_or_noise_not_positive_are_refused():
    with pytest.raises(ValueError, match="must be positive"):
        noisy_information(torch.ones(10, 3), torch.arange(10) % 2, [0.5])
    with pytest.raises(ValueError, match="must be positive"):
        noisy_information(torch.randn(10, 3), torch.arange(10) % 2, [0.5, 0.0])


# --------------------------------------------------------------------------- the classes calibration

def two_class_truth(separation, noise, dim):
    """(I(X;T_s), I(T_s;Y)) of two Gaussian classes by quadrature: along the line through the
    means T_s is the mixture 1/2 N(-+separation/2, v), v = 1 + s^2; across it N(0, v I_{D-1})."""
    v = 1 + noise ** 2
    half = separation / 2 + 12 * math.sqrt(v)
    t = torch.linspace(-half, half, 200_001, dtype=torch.float64)
    density = sum(torch.exp(-(t - m) ** 2 / (2 * v)) for m in (-separation / 2, separation / 2)) / (
        2 * math.sqrt(2 * math.pi * v))
    entropy = float(-torch.trapezoid(density * density.log(), t))
    i_ty = entropy - 0.5 * math.log(2 * math.pi * math.e * v)
    i_xt = entropy + (dim - 1) / 2 * math.log(2 * math.pi * math.e * v) - dim / 2 * math.log(
        2 * math.pi * math.e * noise ** 2)
    return i_xt, i_ty


@pytest.mark.parametrize("separation", [0.0, 2.0, 4.0, 30.0])
def test_the_classes_truth_matches_quadrature(separation):
    # Separation 0: I(T_s;Y) = 0 exactly and I(X;T_s) = D/2 log(1 + 1/s^2) (the classes are one
    # Gaussian of variance 1 + s^2); 30 (~21 sigma): log 2 and that plus log 2.
    truth, error = calibration.class_truths(2, 4, separation, 1.0)
    i_xt, i_ty = two_class_truth(separation, 1.0, 4)
    assert abs(truth["i_ty"] - i_ty) <= 4 * error["i_ty"] + 1e-12
    assert abs(truth["i_xt"] - i_xt) <= 4 * error["i_xt"]
    if separation == 0:
        assert truth["i_ty"] == pytest.approx(0, abs=1e-12) and i_xt == pytest.approx(2 * math.log(2), rel=1e-9)
    if separation == 30:
        assert truth["i_ty"] == pytest.approx(math.log(2), abs=1e-9)
        assert i_xt == pytest.approx(2 * math.log(2) + math.log(2), rel=1e-9)


def test_the_classes_calibration_estimates_its_truths():
    rows = calibration.classes_rows(4, 600, 2, 3.0, [1.0, 2.0], seed=0)
    assert [(row["quantity"], row["noise"]) for row in rows] == [("i_xt", 1.0), ("i_ty", 1.0), ("i_xt", 2.0),
                                                                  ("i_ty", 2.0)]
    for row in rows:
        truth = two_class_truth(3.0, row["noise"], 4)[row["quantity"] == "i_ty"]
        assert row["true_mi"] == pytest.approx(truth, abs=4 * row["true_mi_stderr"])
        # measured: within 6% (I(X;T_s)) and 10% (I(T_s;Y)) at 600 rows
        assert abs(row["estimate"] - truth) < 0.15 * truth and row["in_range"]
        assert (row["classes"], row["separation"], row["rows"], row["dim"]) == (2, 3.0, 600, 4)
        if row["quantity"] == "i_ty":
            assert row["bracketed"] and row["heldout"] <= row["estimate"]
        else:
            assert row["pairwise_lower"] < row["estimate"] < row["pairwise_upper"]
    with pytest.raises(ValueError, match="--dim"):
        calibration.classes_rows(2, 100, 3, 1.0, [1.0])
