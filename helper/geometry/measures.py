"""The geometry of a set of features T [N, D] with labels Y: closed-form, no training.

Every measure but the mean norm is unchanged when all features are multiplied by one
number, so checkpoints whose features have different scales compare.

    effective_rank     exp of the entropy of the centred features' normalised singular values
                       (Roy & Vetterli 2007): D for isotropic features, at most C - 1 when every
                       class has collapsed to its mean
    nc1                tr(Sigma_W Sigma_B^+) / C, within-class variability against the spread of the
                       class means (Papyan, Han & Donoho 2020): 0 when the classes have collapsed
    cdnv               (Var_i + Var_j) / (2 ||mu_i - mu_j||^2) averaged over pairs of classes, Var_c the
                       mean squared distance of class c's features to their mean (Galanti et al. 2022)
    class_separation   R^2 = 1 - mean within-class cosine distance / mean cosine distance over all pairs
                       of classes (Kornblith et al. 2021), every class weighted equally; 1 when each
                       class points one way, 0 when the classes are indistinguishable
    feature_norm       mean Euclidean norm of a feature: the scale the others are free of, and MINE's
                       estimates are not
"""
import math

import torch
import torch.nn.functional as F

# Eigenvalues of the between-class covariance below this fraction of its largest are its null
# space (rank C - 1 at most): Sigma_B^+ inverts only the others.
PINV_RTOL = 1e-10


def class_means(features, labels):
    """(classes present [C], means [C, D], counts [C]) of float64 features."""
    classes, index, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(classes), features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, index, features)
    return classes, sums / counts[:, None], counts


def effective_rank(features):
    centred = features.double() - features.double().mean(0)
    singular = torch.linalg.svdvals(centred)
    if singular.sum() <= 0:
        return 0.0
    p = singular / singular.sum()
    p = p[p > 0]
    return math.exp(float(-(p * p.log()).sum()))


def nc1(features, labels):
    t = features.double()
    classes, means, counts = class_means(t, labels)
    index = torch.searchsorted(classes, labels)
    within = t - means[index]
    sigma_w = within.T @ within / len(t)
    between = means - t.mean(0)  # the global mean, as Papyan et al.
    sigma_b = between.T @ between / len(classes)
    values, vectors = torch.linalg.eigh(sigma_b)
    keep = values > PINV_RTOL * values.max().clamp_min(0)
    if not keep.any():
        return math.inf
    projected = vectors[:, keep]
    return float((torch.einsum("dk,de,ek->k", projected, sigma_w, projected) / values[keep]).sum() / len(classes))


def cdnv(features, labels):
    t = features.double()
    classes, means, counts = class_means(t, labels)
    index = torch.searchsorted(classes, labels)
    spread = torch.zeros(len(classes), dtype=t.dtype, device=t.device)
    spread.index_add_(0, index, ((t - means[index]) ** 2).sum(1))
    variance = spread / counts
    pairs = torch.triu_indices(len(classes), len(classes), offset=1, device=t.device)
    if pairs.shape[1] == 0:
        return math.nan
    i, j = pairs
    distance = ((means[i] - means[j]) ** 2).sum(1)
    return float(((variance[i] + variance[j]) / (2 * distance)).mean())


def class_separation(features, labels):
    """R^2 from class means of the unit-normalised features: the mean cosine similarity of all
    pairs (m, n) drawn from classes j and k is <mean_j, mean_k>, so no pairwise matrix is needed.
    The pairs include each feature with itself, as in Kornblith et al.'s formula."""
    unit = F.normalize(features.double(), dim=1)
    _, means, _ = class_means(unit, labels)
    within = 1 - (means ** 2).sum(1).mean()
    total = 1 - (means.mean(0) ** 2).sum()
    return float(1 - within / total) if total > 0 else math.nan


def feature_norm(features):
    return float(features.double().norm(dim=1).mean())


def measures(features, labels):
    """Every measure of this module, by name."""
    return {"effective_rank": effective_rank(features), "nc1": nc1(features, labels), "cdnv": cdnv(features, labels),
            "class_separation": class_separation(features, labels), "feature_norm": feature_norm(features)}
