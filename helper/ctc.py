"""Contrastive Temporal Coding: embedding heads, memory banks and losses (SPEC section 6).

Stage 1 (instance discrimination): `InstanceLoss` scores a 128-d projection of the
pooled feature against a memory holding one row per training sample and takes the
cross-entropy with the sample's own index. Stage 2: `CTCLoss` contrasts the student
with the frozen info bank through two trainable heads, two memories (`ContrastMemory`)
and the NCE loss of CRD (`nce_loss`).

Memories and normalisation constants are registered buffers, so they are saved in
state dicts (a resumed run continues with the same memory) and follow `.to(device)`.
Under torchrun every process applies the update of the whole global batch (its rows
gathered in rank order, helper.distributed) and fixes Z from the whole batch's scores, so
all processes hold the same memories and Z after every step; the loss of a process is
that of its own share, and DistributedDataParallel averages the gradients.
Memory arithmetic always runs in fp32, also under bf16 autocast: scores go through
exp(score / 0.1), where bf16 rounding would be amplified into percent-level errors.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from helper.distributed import gather_rows, sum_across, world_size

# Added to every NCE denominator, as in CRD, so an all-zero score cannot divide by zero.
NCE_EPS = 1e-7


def l2_normalize(x):
    """Rows of `x` scaled to unit Euclidean norm."""
    return F.normalize(x, p=2, dim=1)


class Embed(nn.Module):
    """Linear map to `dim_out` followed by L2 normalisation (CRD's Embed)."""

    def __init__(self, dim_in, dim_out=128):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x):
        return l2_normalize(self.linear(x.flatten(1)))


def random_memory(n_rows, dim):
    """Memory init of the reference: uniform in +-1/sqrt(dim/3), not normalised."""
    stdv = 1.0 / math.sqrt(dim / 3)
    return torch.rand(n_rows, dim).mul_(2 * stdv).add_(-stdv)


def first_occurrence(index):
    """For each position of `index`, the position where its value first occurs."""
    # argmax returns the first of equal maxima; a [B, B] comparison keeps shapes static
    # (no host sync), and B is one global batch.
    return (index[:, None] == index[None, :]).to(torch.uint8).argmax(dim=1)


@torch.no_grad()
def momentum_update(memory, index, z, momentum):
    """memory[index] <- normalise(momentum * memory[index] + (1 - momentum) * z), in place.

    A repeated index takes the update of its first occurrence (under torchrun: the lowest
    rank's, then the earliest position in that rank's batch); every duplicate then writes
    the same row, so the result does not depend on which write index_copy_ applies last.
    """
    rows = memory.index_select(0, index)
    rows.mul_(momentum).add_(z.to(memory.dtype), alpha=1 - momentum)
    memory.index_copy_(0, index, l2_normalize(rows)[first_occurrence(index)])


def _fp32(device):
    """Context that switches autocast off, so memory maths stays in fp32."""
    return torch.autocast(device_type=device.type, enabled=False)


class InstanceMemory(nn.Module):
    """One `dim`-row per training sample; scores are dot products over a temperature."""

    def __init__(self, n_data, dim=128, temperature=0.1, momentum=0.9):
        super().__init__()
        self.temperature = temperature
        self.momentum = momentum
        self.register_buffer("memory", random_memory(n_data, dim))

    def logits(self, z):
        """[B, N] scores <z, m_j> / temperature of normalised `z` against every row."""
        with _fp32(z.device):
            # The snapshot keeps the rows this score was made from for the backward
            # pass, since `update` then changes the buffer in place.
            return z.float() @ self.memory.clone().T / self.temperature

    def update(self, index, z):
        """Momentum update with the whole global batch's rows."""
        momentum_update(self.memory, *gather_rows(index, z), self.momentum)


class InstanceLoss(nn.Module):
    """Stage-1 loss CE(<z, m_j> / tau1, index); updates the memory after scoring.

    `projector` is a separate attribute because the reference keeps it out of the
    optimizer: it stays at its random initialisation while gradients still flow
    through it into the backbone. Leave `projector.parameters()` out of the optimizer
    (or call `projector.requires_grad_(False)`, which is equivalent and accumulates
    no gradients) to reproduce that; add them to train it.
    """

    def __init__(self, feat_dim, n_data, dim=128, temperature=0.1, momentum=0.9):
        super().__init__()
        self.projector = Embed(feat_dim, dim)
        self.memory = InstanceMemory(n_data, dim, temperature, momentum)

    def forward(self, feature, index):
        z = self.projector(feature)
        loss = F.cross_entropy(self.memory.logits(z), index)
        self.memory.update(index, z)
        return loss


class ContrastMemory(nn.Module):
    """CRD's two memories: M1 (`memory_student`) and M2 (`memory_infobank`).

    Scores p = exp(<row, v> / T) / Z are taken of v1 against M2 rows and of v2
    against M1 rows; Z (`z_student` for v1's scores, `z_infobank` for v2's) starts
    at a negative sentinel and is fixed at the first call to mean(p) * N, the mean
    taken over the whole global batch.
    """

    def __init__(self, feat_dim, n_data, k, temperature=0.1, momentum=0.9):
        super().__init__()
        self.n_data = n_data
        self.k = k
        self.temperature = temperature
        self.momentum = momentum
        self.register_buffer("memory_student", random_memory(n_data, feat_dim))
        self.register_buffer("memory_infobank", random_memory(n_data, feat_dim))
        self.register_buffer("z_student", torch.tensor(-1.0))
        self.register_buffer("z_infobank", torch.tensor(-1.0))

    def _exp_scores(self, memory, v, contrast_idx):
        # Scoring v against the whole memory and gathering K+1 columns reads N rows
        # once; gathering B * (K+1) rows first (CRD) copies ~0.5 GB per side at batch
        # 64, K = 16384. The clone keeps the pre-update rows for the backward pass.
        dense = v @ memory.clone().T
        return torch.exp(dense.gather(1, contrast_idx) / self.temperature)

    def _fix_z(self, exp_student, exp_infobank):
        """(Z of v1's scores, Z of v2's); fixed from the first batch, every process's rows counted."""
        # Every process scores a batch of the same size, so the count is known on the host.
        totals = sum_across(torch.stack([exp_student.detach().sum(), exp_infobank.detach().sum()]))
        first = totals / (exp_student.numel() * world_size()) * self.n_data
        # torch.where instead of an `if` keeps the hot path free of host syncs.
        fixed = torch.stack([self.z_student, self.z_infobank])
        z = torch.where(fixed < 0, first, fixed)
        self.z_student.copy_(z[0])
        self.z_infobank.copy_(z[1])
        return z[0], z[1]

    def forward(self, v1, v2, index, contrast_idx):
        """[B, K+1] scores of v1 vs M2 and v2 vs M1; then momentum-updates both memories."""
        if contrast_idx.shape != (v1.shape[0], self.k + 1):
            raise ValueError(f"contrast_idx has shape {tuple(contrast_idx.shape)}, "
                             f"expected ({v1.shape[0]}, {self.k + 1})")
        with _fp32(v1.device):
            v1, v2 = v1.float(), v2.float()
            exp_student = self._exp_scores(self.memory_infobank, v1, contrast_idx)
            exp_infobank = self._exp_scores(self.memory_student, v2, contrast_idx)
            z_student, z_infobank = self._fix_z(exp_student, exp_infobank)
            index, v1_all, v2_all = gather_rows(index, v1, v2)
            momentum_update(self.memory_student, index, v1_all, self.momentum)
            momentum_update(self.memory_infobank, index, v2_all, self.momentum)
        return exp_student / z_student, exp_infobank / z_infobank


def nce_loss(p, n_data):
    """CRD's NCE loss of [B, K+1] scores whose column 0 is the positive.

    -(sum_b log(p0 / (p0 + K/N + eps)) + sum_b,k log((K/N) / (p_k + K/N + eps))) / B
    """
    noise = (p.shape[1] - 1) / n_data  # K * Pn with the uniform noise Pn = 1/N
    positive, negatives = p[:, 0], p[:, 1:]
    log_positive = torch.log(positive / (positive + noise + NCE_EPS))
    log_negatives = torch.log(noise / (negatives + noise + NCE_EPS))
    return -(log_positive.sum() + log_negatives.sum()) / p.shape[0]


class CTCLoss(nn.Module):
    """Stage-2 loss: trainable heads for student (v1) and info bank (v2), memories, NCE."""

    def __init__(self, feat_dim_student, feat_dim_infobank, n_data, k, feat_dim=128,
                 temperature=0.1, momentum=0.9):
        super().__init__()
        self.n_data = n_data
        self.embed_student = Embed(feat_dim_student, feat_dim)
        self.embed_infobank = Embed(feat_dim_infobank, feat_dim)
        self.contrast_memory = ContrastMemory(feat_dim, n_data, k, temperature, momentum)

    def forward(self, f_student, f_infobank, index, contrast_idx):
        v1 = self.embed_student(f_student)
        v2 = self.embed_infobank(f_infobank)
        scores_student, scores_infobank = self.contrast_memory(v1, v2, index, contrast_idx)
        return nce_loss(scores_student, self.n_data) + nce_loss(scores_infobank, self.n_data)

    @torch.no_grad()
    def overwrite_memories(self, index, f_infobank, written=None):
        """Set memory rows at `index` from the info bank's features (`--update_memory_bank`).

        Both memories are filled from the info bank's features, M1 through the
        student head and M2 through the info-bank head: right after stage 1 the
        student is the info bank, so M1 then holds the student-side embedding of
        every sample instead of random rows. `written` (bool [N], kept by the caller
        for one pass over the data) marks rows already set: a sample met again (a
        repeated index, or the samples an epoch split over several processes wraps
        around to) keeps its first value, so one pass sets every row exactly once.
        """
        memory = self.contrast_memory
        if written is None:
            written = torch.zeros(self.n_data, dtype=torch.bool, device=f_infobank.device)
        with _fp32(f_infobank.device):
            f_infobank = f_infobank.float()
            index, student, infobank = gather_rows(index, self.embed_student(f_infobank),
                                                   self.embed_infobank(f_infobank))
            first = first_occurrence(index)
            earlier = written[index][:, None]
            for rows, new in ((memory.memory_student, student), (memory.memory_infobank, infobank)):
                rows.index_copy_(0, index, torch.where(earlier, rows[index], new[first]))
            written[index] = True
