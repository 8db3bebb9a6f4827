"""The fast path: the whole data set kept on the device as uint8, augmented as batched tensor ops.

No worker processes and no per-sample Python: one batch is a gather of uint8
images, one more gather that does the random crop and flip of every sample at
once, and the ToTensor+Normalize arithmetic. CTC contrast indices are drawn for
the whole batch on the device too. Works on the CPU as well (it skips PIL there).
"""
import torch
import torch.nn.functional as F

PAD = 4  # RandomCrop(32, padding=4): zero padding, offsets 0..2*PAD in each direction


class ContrastSampler:
    """CTC contrast indices for a batch, drawn on the device (same distribution as the dataset variant).

    Samples are sorted by class once; the other-class pool of class c is that order
    with c's block cut out. k distinct pool positions per row are the top-k of
    uniform random keys (a uniform subset without replacement); positions at or
    past the block start are shifted over the block.
    """

    def __init__(self, labels, k, mode="exact", device=None):
        if mode not in ("exact", "relax"):
            raise ValueError(f"contrast mode must be 'exact' or 'relax', got {mode!r}")
        labels = torch.as_tensor(labels, dtype=torch.int64, device=device)
        self.device, self.k, self.mode = labels.device, int(k), mode
        self.size = labels.numel()
        self.order = torch.argsort(labels, stable=True)
        self.counts = torch.bincount(labels)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        pools = self.size - self.counts[self.counts > 0]
        if int(pools.min()) == 0:
            raise ValueError("CTC contrast sampling needs at least two classes")
        # Decided once here, so that sampling never waits on the device to read a value back.
        self.largest_pool, self.smallest_pool = int(pools.max()), int(pools.min())

    def sample(self, index, target, generator=None):
        """LongTensor [B, k+1]: the positive, then k negatives from other classes."""
        index = torch.as_tensor(index, dtype=torch.int64, device=self.device)
        target = torch.as_tensor(target, dtype=torch.int64, device=self.device)
        count, start = self.counts[target], self.starts[target]
        if self.mode == "exact":
            positive = index
        else:  # uniform over the class, the sample itself included
            draw = torch.rand(index.shape, generator=generator, device=self.device)
            positive = self.order[start + (draw * count).long().minimum(count - 1)]
        positions = self._pool_positions(self.size - count, generator)
        negatives = self.order[positions + (positions >= start[:, None]) * count[:, None]]
        return torch.cat([positive[:, None], negatives], dim=1)

    def _pool_positions(self, pool, generator):
        """[B, k] positions in each row's pool: distinct where k <= pool, with replacement where k > pool."""
        rows = pool.numel()
        with_replacement = None
        if self.k > self.smallest_pool:
            draw = torch.rand((rows, self.k), generator=generator, device=self.device)
            with_replacement = (draw * pool[:, None]).long().minimum(pool[:, None] - 1)
            if self.k > self.largest_pool:
                return with_replacement
        keys = torch.rand((rows, self.largest_pool), generator=generator, device=self.device)
        outside_pool = torch.arange(self.largest_pool, device=self.device) >= pool[:, None]
        keys.masked_fill_(outside_pool, -1.0)  # never among the top k of a row whose pool holds >= k
        distinct = keys.topk(self.k, dim=1, sorted=False).indices
        if with_replacement is None:
            return distinct
        return torch.where((pool < self.k)[:, None], with_replacement, distinct)


class Normalise:
    """torchvision's ToTensor + Normalize as tensor ops on uint8 [B, 3, H, W]: (x / 255 - mean) / std.

    mean and std live on the device once, so normalising a batch copies nothing from the host.
    """

    def __init__(self, mean, std, device):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __call__(self, images):
        return images.float().div_(255).sub_(self.mean).div_(self.std)


def shard_length(size, shard):
    return -(-size // shard[1])


def shard_order(order, shard):
    """This process's part of an epoch's sample order under multi-process training.

    Every process gets the same number of samples (the order is padded by wrapping
    around, like torch's DistributedSampler), so all of them run the same number of
    steps: an uneven split would leave one process waiting forever in the last
    gradient all-reduce.
    """
    rank, world = shard
    if world == 1:
        return order
    padding = shard_length(len(order), shard) * world - len(order)
    return torch.cat([order, order[:padding]])[rank::world]


class DeviceLoader:
    """Batches of a device-resident uint8 data set, shaped like the DataLoader path.

    Yields (img, target) / (img, target, index) / (img, target, index, contrast_idx),
    img float32 [B, 3, 32, 32] normalised exactly like ToTensor + Normalize.

    Under multi-process training (`shard` = (rank, world size)) every process draws the
    same epoch order from the shared seed, then crops, flips and negatives from a stream
    of its own (`draws`), seeded from that same seed and its rank: processes do not repeat
    each other's draws, and a resumed run, whose processes all restore the first one's
    RNG state, draws what the uninterrupted run drew.
    """

    def __init__(self, images, labels, batch_size, mean, std, device, train=True, shuffle=None,
                 drop_last=False, with_index=False, contrast=None, generator=None, shard=(0, 1)):
        self.device = torch.device(device if device is not None else "cpu")
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {list(images.shape)}")
        self.images = images.to(self.device).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(self.device)
        self.batch_size, self.train, self.drop_last = batch_size, train, drop_last
        self.shard = shard
        self.shuffle = train if shuffle is None else shuffle
        self.with_index = with_index or contrast is not None
        self.contrast = contrast
        self.normalise = Normalise(mean, std, self.device)
        # Without an explicit generator each epoch is seeded from torch's global RNG, like
        # the DataLoader's base seed: set_seed makes runs repeatable and restoring the global
        # RNG state of a checkpoint makes a resumed run draw the same batches.
        self.reseed_each_epoch = generator is None
        self.generator = generator if generator is not None else torch.Generator(device=self.device)
        self.draws = self.generator if shard[1] == 1 else torch.Generator(device=self.device)

    @property
    def dataset_size(self):
        return self.labels.numel()

    def __len__(self):
        full, rest = divmod(shard_length(self.dataset_size, self.shard), self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def __iter__(self):
        if self.reseed_each_epoch:
            self.generator.manual_seed(int(torch.randint(0, 2**62, ())))
        if self.shuffle:
            order = torch.randperm(self.dataset_size, generator=self.generator, device=self.device)
        else:
            order = torch.arange(self.dataset_size, device=self.device)
        order = shard_order(order, self.shard)
        rank, world = self.shard
        if world > 1:
            seeds = torch.randint(0, 2**62, (world,), generator=self.generator, device=self.device)
            self.draws.manual_seed(int(seeds[rank]))
        for batch in range(len(self)):
            index = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            yield self._batch(index)

    def _batch(self, index):
        images = self.images[index]
        if self.train:
            images = self.random_crop_flip(images)
        img = self.normalise(images)
        target = self.labels[index]
        if not self.with_index:
            return img, target
        if self.contrast is None:
            return img, target, index
        return img, target, index, self.contrast.sample(index, target, generator=self.draws)

    def random_crop_flip(self, images):
        """Per sample: a 32x32 window of the image zero-padded by 4, mirrored with probability 1/2.

        Crop and flip are one gather: row r of the output is padded row dy+r, column c
        is padded column dx+c, or dx+31-c when flipped.
        """
        count, _, height, width = images.shape
        padded = F.pad(images, (PAD, PAD, PAD, PAD))

        def draw(high):
            return torch.randint(0, high, (count,), generator=self.draws, device=self.device)

        offset_y, offset_x, flip = draw(2 * PAD + 1), draw(2 * PAD + 1), draw(2).bool()
        rows = offset_y[:, None] + torch.arange(height, device=self.device)
        columns = torch.arange(width, device=self.device)
        columns = offset_x[:, None] + torch.where(flip[:, None], width - 1 - columns, columns)
        samples = torch.arange(count, device=self.device)[:, None, None, None]
        channels = torch.arange(images.shape[1], device=self.device)[None, :, None, None]
        return padded[samples, channels, rows[:, None, :, None], columns[:, None, None, :]]
