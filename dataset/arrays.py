"""The plain, reference-like path: a torch Dataset over uint8 arrays with PIL transforms.

Variants: 'plain' -> (img, target), 'instance' -> (img, target, index),
'ctc' -> (img, target, index, contrast_idx). Random draws in the dataset use
numpy's global RNG like the reference; DataLoader seeds numpy in every worker from
that worker's torch seed, so workers do not repeat each other and a seeded loader
repeats its draws.
"""
import random

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from dataset.gpu import shard_length, shard_order

AUGMENTATIONS = ("vanilla", "none", "mine", "auto")
VARIANTS = ("plain", "instance", "ctc")
CONTRAST_MODES = ("exact", "relax")


class Cutout:
    """One square hole of side `length` (clipped at the border) set to 0, with numpy's global RNG.

    Applied after Normalize, as in the Cutout paper's code, so the hole has the mean colour.
    """

    def __init__(self, length=16):
        self.length = length

    def __call__(self, img):
        height, width = img.shape[-2:]
        center_y, center_x = np.random.randint(height), np.random.randint(width)
        top, bottom = max(center_y - self.length // 2, 0), min(center_y + self.length // 2, height)
        left, right = max(center_x - self.length // 2, 0), min(center_x + self.length // 2, width)
        img = img.clone()
        img[..., top:bottom, left:right] = 0
        return img


def make_transform(train, aug, mean, std):
    """torchvision transform of one PIL image; the test split is only normalised."""
    normalize = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    if not train or aug == "mine":
        return transforms.Compose(normalize)
    crop_flip = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    if aug in ("vanilla", "none"):  # the reference calls its standard crop+flip 'none' as well
        return transforms.Compose(crop_flip + normalize)
    autoaugment = transforms.AutoAugment(transforms.AutoAugmentPolicy.CIFAR10)
    return transforms.Compose(crop_flip + [autoaugment] + normalize + [Cutout(16)])


class ContrastIndexSampler:
    """CTC contrast indices for one sample with numpy's global RNG (SPEC 4).

    Samples are kept sorted by class (stable), so the other-class pool of class c is
    the sorted list with c's block cut out; a position in that pool maps to an index
    by skipping the block. The pool is in the same order as the reference's
    per-class negative lists, so the same numpy state draws the same negatives.
    """

    def __init__(self, labels, k, mode="exact"):
        labels = np.asarray(labels, dtype=np.int64)
        self.k, self.mode = k, mode
        self.order = np.argsort(labels, kind="stable")
        self.counts = np.bincount(labels)
        self.starts = np.cumsum(self.counts) - self.counts
        self.size = len(labels)

    def sample(self, index, target):
        """int64 [k+1]: the positive, then k other-class negatives (no repeats when k <= pool)."""
        count, start = self.counts[target], self.starts[target]
        if self.mode == "exact":
            positive = index
        else:  # a random same-class sample; the sample itself is in that pool
            positive = self.order[start + np.random.choice(count, 1)[0]]
        pool = self.size - count
        positions = np.random.choice(pool, self.k, replace=self.k > pool)
        negatives = self.order[positions + (positions >= start) * count]
        return np.hstack(([positive], negatives)).astype(np.int64)


class ArrayDataset(torch.utils.data.Dataset):
    def __init__(self, images, labels, transform, variant="plain", contrast=None):
        self.images, self.labels = images, labels
        self.transform, self.variant, self.contrast = transform, variant, contrast

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        img = self.transform(Image.fromarray(self.images[index]))
        target = int(self.labels[index])
        if self.variant == "plain":
            return img, target
        if self.variant == "instance":
            return img, target, index
        return img, target, index, self.contrast.sample(index, target)


class ShardedRandomSampler(torch.utils.data.Sampler):
    """A fresh random order each epoch, split across training processes.

    The permutation is drawn from torch's global RNG, which every process seeds alike,
    so the processes agree on it and each takes its own share (gpu.shard_order). From
    the same draw and its rank each process then reseeds numpy's global RNG, which draws
    negatives, relax-mode positives and Cutout holes when the loader has no workers: the
    processes draw different ones, and a resumed run the same ones as the uninterrupted
    run. (torchvision's crops and flips draw from torch's global RNG, which must stay
    shared for the next epoch's order: without workers, processes crop alike.)
    """

    def __init__(self, size, shard):
        self.size, self.shard = size, shard

    def __len__(self):
        return shard_length(self.size, self.shard)

    def __iter__(self):
        seed = int(torch.randint(0, 2**62, ()))
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(seed))
        np.random.seed(rank_seed(seed, self.shard[0]) % 2**32)
        return iter(shard_order(order, self.shard).tolist())


def rank_seed(seed, rank):
    """A seed of process `rank`'s own, from a seed every process shares."""
    words = np.random.SeedSequence([seed, rank]).generate_state(2, dtype=np.uint64)
    return int(words[0] >> np.uint64(1))


def seed_worker_of_rank(rank, worker_id):
    """DataLoader worker_init_fn under multi-process training: the worker's seeds (the same in
    every process, from the loader's shared base seed) mixed with the rank, so processes draw
    their own crops, flips and negatives."""
    seed = rank_seed(torch.initial_seed(), rank)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
