"""Contrastive Temporal Coding: embedding heads, memory banks and losses (SPEC section 6).

Stage 1 (instance discrimination): `InstanceLoss` scores a 128-d projection of the
pooled feature against a memory holding one row per training sample and takes the
cross-entropy with the sample's own index. Stage 2: `CTCLoss` contrasts the student
with the frozen info bank through two trainable heads, two memories (`ContrastMemory`)
and the NCE loss of CRD (`nce_loss`).

Memories and normalisation constants are registered buffers, so they are saved in
state dicts (a resumed run continues with the same memory) and follow `.to(device)`.
Memory arithmetic always runs in fp32, also under bf16 autocast: scores go through
exp(score / 0.1), where bf16 rounding would be amplified into percent-level errors.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

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


@torch.no_grad()
def momentum_update(memory, index, z, momentum):
    """memory[index] <- normalise(momentum * memory[index] + (1 - momentum) * z), in place.

    With repeated indices in one batch one of the updates wins (as in the reference).
    """
    rows = memory.index_select(0, index)
    rows.mul_(momentum).add_(z.detach().to(memory.dtype), alpha=1 - momentum)
    memory.index_copy_(0, index, l2_normalize(rows))


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
        momentum_update(self.memory, index, z, self.momentum)


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
    at a negative sentinel and is fixed at the first call to mean(p) * N.
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

    def _scores(self, memory, v, contrast_idx, z_buffer):
        # Scoring v against the whole memory and gathering K+1 columns reads N rows
        # once; gathering B * (K+1) rows first (CRD) copies ~0.5 GB per side at batch
        # 64, K = 16384. The clone keeps the pre-update rows for the backward pass.
        dense = v @ memory.clone().T
        exp_scores = torch.exp(dense.gather(1, contrast_idx) / self.temperature)
        # torch.where instead of an `if` keeps the hot path free of host syncs.
        first_z = exp_scores.detach().mean() * self.n_data
        z = torch.where(z_buffer < 0, first_z, z_buffer)
        z_buffer.copy_(z)
        return exp_scores / z

    def forward(self, v1, v2, index, contrast_idx):
        """[B, K+1] scores of v1 vs M2 and v2 vs M1; then momentum-updates both memories."""
        if contrast_idx.shape != (v1.shape[0], self.k + 1):
            raise ValueError(f"contrast_idx has shape {tuple(contrast_idx.shape)}, "
                             f"expected ({v1.shape[0]}, {self.k + 1})")
        with _fp32(v1.device):
            v1, v2 = v1.float(), v2.float()
            scores_student = self._scores(self.memory_infobank, v1, contrast_idx, self.z_student)
            scores_infobank = self._scores(self.memory_student, v2, contrast_idx, self.z_infobank)
            momentum_update(self.memory_student, index, v1, self.momentum)
            momentum_update(self.memory_infobank, index, v2, self.momentum)
        return scores_student, scores_infobank


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
    def overwrite_memories(self, index, f_infobank):
        """Set memory rows at `index` from the info bank's features (`--update_memory_bank`).

        Both memories are filled from the info bank's features, M1 through the
        student head and M2 through the info-bank head: right after stage 1 the
        student is the info bank, so M1 then holds the student-side embedding of
        every sample instead of random rows.
        """
        memory = self.contrast_memory
        with _fp32(f_infobank.device):
            f_infobank = f_infobank.float()
            memory.memory_student.index_copy_(0, index, self.embed_student(f_infobank))
            memory.memory_infobank.index_copy_(0, index, self.embed_infobank(f_infobank))
