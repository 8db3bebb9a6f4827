"""I(X;T_s) and I(T_s;Y) of features with Gaussian noise added: T_s = T + sigma Z, Z ~ N(0, I_D).

For a deterministic network I(X;T) is infinite (continuous images) or log N (a sample of N
images): it cannot fall, and a critic-trained estimate of it (MINE) is a lower bound whose
looseness changes from checkpoint to checkpoint. Adding noise of a stated size makes it
finite and well defined (Saxe et al. 2018; Goldfeld et al. 2019): sigma is the resolution
below which two features count as the same.

On a sample of N rows (t_i, y_i), X uniform over the rows, T_s is a mixture of N Gaussians
N(t_i, sigma^2 I). Both quantities are those of this mixture, computed without training
anything (the sample-propagation estimator of Goldfeld et al.): one noise draw z_i per row,
u_i = t_i + sigma z_i, and with e_ij = log phi(u_i - t_j) - log phi(u_i - t_i)
= -(||t_i - t_j||^2 + 2 sigma <z_i, t_i - t_j>) / (2 sigma^2),

    I(X;T_s) = mean_i [ log N - logsumexp_j e_ij ]
    I(T_s;Y) = mean_i [ logsumexp_{j: y_j = y_i} e_ij - log N_{y_i} - logsumexp_j e_ij + log N ]

Their difference, mean_i [ -logsumexp_{j: y_j = y_i} e_ij + log N_{y_i} ], estimates
I(X;T_s|Y) >= 0 with the same draws, so the data-processing inequality I(T_s;Y) <= I(X;T_s)
holds up to the draws' noise (exactly when each class has collapsed to a point). Every value
lies in [0, log N] (I(T_s;Y) in [0, log C]) up to that noise. The pairwise-distance bounds of
Kolchinsky & Tracey (2017) on the mixture's I(X;T_s) come from the same distances: with
d_ij = ||t_i - t_j||^2, lower (Bhattacharyya) mean_i [log N - logsumexp_j -d_ij / (8 sigma^2)]
and upper (Kullback-Leibler) the same with 2 sigma^2.

The sample's mixture is not the population's. Its I(X;T_s) cannot exceed log N and reads low
as it approaches that ceiling. Where the noisy features still tell the rows apart they tell
their labels too, so the mixture's I(T_s;Y) reads high there (log C once I(X;T_s) nears log N).
`i_ty_heldout` guesses each row's label from the other rows' mixture (leave-one-out):
H(Y) + mean log q(y_i | u_i) is a held-out cross-entropy bound, below the population's
I(T_s;Y) in expectation, and never above i_ty (adding the row's own term only raises q).
`saturated` marks an I(X;T_s) above log(N) / 2: there the sample cannot resolve the features
at this noise, I(X;T_s) reads low and I(T_s;Y) high. bench/BENCHMARKS.md has the calibration.

Distances are float32 (TF32 on GPUs that use it): at noise far below the features' scale (s under
about 0.05) the rounding of ||t_i||^2 + ||t_j||^2 - 2 <t_i, t_j> reaches the estimate.

Distances are computed in blocks of rows, so memory stays at a few [block, N] matrices; the
two matrix products per block (features and noise against all features) serve every noise level.
"""
import math
from dataclasses import dataclass

import torch

BLOCK_ROWS = 1024
# Each row's noise is drawn as z and -z (antithetic draws): the term linear in z, which dominates
# the estimate's variance when sigma is large against the distances, cancels within the pair.
ANTITHETIC = (1, -1)


@dataclass
class NoisyInformation:
    noise: float           # s as asked: relative to the features' scale, or absolute
    sigma: float           # the noise's standard deviation per dimension, in the features' units
    i_xt: float            # nats
    i_xt_stderr: float     # standard error of the mean over rows
    i_xt_lower: float      # Kolchinsky-Tracey bounds on the sample mixture's I(X;T_s)
    i_xt_upper: float
    i_ty: float            # nats; None without labels
    i_ty_stderr: float
    i_ty_heldout: float    # leave-one-out: each row's label guessed from the other rows' mixture (None when
                           # some class has a single row)
    rows: int
    saturated: bool        # i_xt above log(rows) / 2: the sample cannot resolve it

    def row(self):
        return dict(vars(self))


def feature_scale(features):
    """Root mean square distance of a feature to the features' mean: sqrt of the total variance."""
    centred = features.double() - features.double().mean(0)
    return float(centred.pow(2).sum(1).mean().sqrt())


@torch.no_grad()
def noisy_information(features, labels, noise_levels, relative=True, seed=0, block_rows=BLOCK_ROWS):
    """A NoisyInformation per noise level for features [N, D] (labels [N] or None).

    relative=True: sigma = s * feature_scale(features), so that a rescaled copy of the features
    gives the same numbers and models of different widths compare (for isotropic features of
    many dimensions I(X;T_s) is then about 1 / (2 s^2) nats); relative=False: sigma = s.
    The noise draws depend only on `seed` and the shape, so checkpoints measured with one seed
    share them (paired comparisons), and so do the noise levels.
    """
    t = features.float()
    t = t - t.mean(0)
    n, dim = t.shape
    scale = feature_scale(t) if relative else 1.0
    sigmas = [s * scale for s in noise_levels]
    if not all(sigma > 0 for sigma in sigmas):
        raise ValueError(f"noise levels must be positive and the features not all equal (scale {scale})")
    z = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).to(t.device)
    # Rows sorted by class, so that a block of one class's rows finds its class's columns in one slice.
    with_labels = labels is not None  # one class is fine: I(T_s;Y) is then 0, as H(Y) is
    labels = torch.zeros(n, dtype=torch.long) if labels is None else torch.as_tensor(labels).cpu()
    order = torch.argsort(labels, stable=True)
    classes, counts = torch.unique_consecutive(labels[order], return_counts=True)
    # A row alone in its class has no other row to guess its label from: no held-out value then.
    heldout = bool(counts.min() >= 2)
    t, z = t[order.to(t.device)], z[order.to(t.device)]
    squared = (t * t).sum(1)
    terms = [{key: [] for key in ("xt", "ty", "ty_heldout", "lower", "upper")} for _ in sigmas]
    bounds = torch.cumsum(counts, 0).tolist()
    for first, last in zip([0] + bounds[:-1], bounds):
        for start in range(first, last, block_rows):
            rows = slice(start, min(start + block_rows, last))
            block_terms(t, z, squared, rows, (first, last), sigmas, terms, with_labels)
    results = []
    for s, sigma, found in zip(noise_levels, sigmas, terms):
        xt = torch.cat(found["xt"]).double()
        i_xt = float(xt.mean())
        ty = {key: torch.cat(found[key]).double() if found[key] else None for key in ("ty", "ty_heldout")}
        results.append(NoisyInformation(
            noise=s, sigma=sigma, i_xt=i_xt, i_xt_stderr=stderr(xt),
            i_xt_lower=float(torch.cat(found["lower"]).double().mean()),
            i_xt_upper=float(torch.cat(found["upper"]).double().mean()),
            i_ty=mean_or_none(ty["ty"]), i_ty_stderr=None if ty["ty"] is None else stderr(ty["ty"]),
            i_ty_heldout=mean_or_none(ty["ty_heldout"]) if heldout else None, rows=n,
            saturated=i_xt > math.log(n) / 2))
    return results


def block_terms(t, z, squared, rows, own_class, sigmas, terms, with_labels):
    """Append each noise level's per-row terms for `rows` (all of one class, whose columns are
    the slice `own_class`) to `terms`."""
    n = len(t)
    block = t[rows]
    distance = (squared[rows, None] + squared[None, :] - 2 * block @ t.T).clamp_min_(0)
    drift = (z[rows] * block).sum(1, keepdim=True) - z[rows] @ t.T  # <z_i, t_i - t_j>
    diagonal = (torch.arange(len(block), device=t.device), torch.arange(rows.start, rows.stop, device=t.device))
    distance[diagonal] = 0  # exactly, whatever the rounding
    drift[diagonal] = 0
    log_n = math.log(n)
    log_prior = math.log((own_class[1] - own_class[0]) / n)
    columns = slice(*own_class)
    for sigma, found in zip(sigmas, terms):
        xt, ty, heldout = 0, 0, 0
        for sign in ANTITHETIC:
            # e_ij = log phi(u_i - t_j) - log phi(u_i - t_i); the row's own term (e_ii = 0) is left
            # out here and added back with logaddexp, so the held-out (leave-one-out) sums come free.
            e = torch.add(distance, drift, alpha=sign * 2 * sigma).mul_(-1 / (2 * sigma ** 2))
            e[diagonal] = -math.inf
            others = torch.logsumexp(e, 1)
            everything = torch.logaddexp(others, torch.zeros_like(others))
            xt = xt + (log_n - everything) / len(ANTITHETIC)
            if with_labels:
                own_others = torch.logsumexp(e[:, columns], 1)
                own = torch.logaddexp(own_others, torch.zeros_like(own_others))
                ty = ty + (own - everything - log_prior) / len(ANTITHETIC)
                heldout = heldout + (own_others - others - log_prior) / len(ANTITHETIC)
        found["xt"].append(xt)
        if with_labels:
            found["ty"].append(ty)
            found["ty_heldout"].append(heldout)
        found["lower"].append(log_n - torch.logsumexp(distance * (-1 / (8 * sigma ** 2)), 1))
        found["upper"].append(log_n - torch.logsumexp(distance * (-1 / (2 * sigma ** 2)), 1))


def mean_or_none(values):
    return None if values is None else float(values.mean())


def stderr(values):
    return float(values.std() / math.sqrt(len(values))) if len(values) > 1 else math.nan
