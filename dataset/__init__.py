"""Data sets of the paper as uint8 arrays, torch Datasets and loaders.

    dataset_info(name)                 -> DatasetInfo(name, num_classes, mean, std)
    load_arrays(name, root, split)     -> uint8 [N, 32, 32, 3] RGB images, int64 [N] labels
    build_dataset(name, root, split, ...)  -> torch Dataset (PIL transforms, reference-like)
    build_loaders(name, root, ...)     -> (train_loader, test_loader, num_train)

Names: 'cifar100', 'cifar10', 'cinic10', 'stl10', 'fashion-mnist', 'emnist' and 'folder:<path>' (an image
folder with train/ and test/ or valid/). split is 'train' or 'test', where 'test' is
the evaluation split (CINIC-10: valid/). Every source is decoded once into the
array form, so the PIL path and the device-resident path see the same pixels.
"""
import functools
from pathlib import Path

import numpy as np
import torch

from dataset import cifar10, cifar100, cinic10, stl10
from dataset.arrays import (AUGMENTATIONS, CONTRAST_MODES, VARIANTS, ArrayDataset, ContrastIndexSampler,
                            ShardedRandomSampler, make_transform, seed_worker_of_rank)
from dataset.common import CIFAR100_MEAN, CIFAR100_STD, DatasetInfo
from dataset.folder import class_names, load_folder
from dataset.gray import emnist, fashion_mnist
from dataset.gpu import ContrastSampler, DeviceLoader
from util import UserError

SOURCES = {module.INFO.name: module for module in (cifar100, cifar10, cinic10, stl10, fashion_mnist, emnist)}
FOLDER_PREFIX = "folder:"
LOADERS = ("torch", "gpu", "auto")
GPU_MEMORY_SHARE = 0.25  # loader='auto' keeps the data on the GPU only if it takes less than this of free memory

__all__ = ["DatasetInfo", "canonical_name", "dataset_tag", "dataset_info", "load_arrays", "build_dataset", "build_loaders",
           "train_labels", "smallest_contrast_pool", "DeviceLoader", "ContrastSampler", "AUGMENTATIONS", "VARIANTS",
           "CONTRAST_MODES", "LOADERS"]


def dataset_info(name):
    if name.startswith(FOLDER_PREFIX):
        path = _folder_path(name)
        return DatasetInfo(name, len(class_names(path / "train")), CIFAR100_MEAN, CIFAR100_STD)
    return _source(name).INFO


def load_arrays(name, root, split):
    """(uint8 [N, 32, 32, 3] RGB, int64 [N]) of the 'train' or 'test' (evaluation) split."""
    if split not in ("train", "test"):
        raise UserError(f"split must be 'train' or 'test', got '{split}'")
    if name.startswith(FOLDER_PREFIX):
        return load_folder(_folder_path(name), split)
    return _source(name).load(root, split)


def build_dataset(name, root, split, aug="vanilla", variant="plain", nce_k=16384, mode="exact"):
    """torch Dataset of one split: (img, target) [+ index [+ contrast_idx]], img float32 [3, 32, 32]."""
    _check_choices(aug=aug, variant=variant, mode=mode)
    images, labels = load_arrays(name, root, split)
    return _wrap(images, labels, dataset_info(name), split == "train", aug, variant, nce_k, mode)


def build_loaders(name, root, batch_size, num_workers, aug="vanilla", variant="plain", nce_k=16384,
                  mode="exact", test_batch_size=None, loader="torch", device=None, seed=None, shard=(0, 1)):
    """(train_loader, test_loader, num_train). The test loader is plain, unshuffled, keeps every sample.

    loader: 'torch' (DataLoader over PIL transforms), 'gpu' (DeviceLoader, data kept on
    `device`), 'auto' ('gpu' on a CUDA device with room for the data, else 'torch').
    `seed` fixes the shuffling (and the DeviceLoader's augmentation); None draws it from torch's RNG.
    `shard` = (rank, world size) gives each training process its share of every epoch.
    """
    _check_choices(aug=aug, variant=variant, mode=mode, loader=loader)
    device = torch.device(device if device is not None else "cpu")
    info = dataset_info(name)
    train_images, train_labels = load_arrays(name, root, "train")
    test_images, test_labels = load_arrays(name, root, "test")
    test_batch_size = test_batch_size or batch_size
    if _resolve_loader(loader, aug, device, train_images.nbytes + test_images.nbytes) == "gpu":
        generator = None
        if seed is not None:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
        contrast = None
        if variant == "ctc":
            contrast = ContrastSampler(_contrast_labels(train_labels, info), nce_k, mode, device)
        train_loader = DeviceLoader(train_images, train_labels, batch_size, info.mean, info.std, device,
                                    train=aug != "mine", shuffle=True, with_index=variant != "plain",
                                    contrast=contrast, generator=generator, shard=shard)
        test_loader = DeviceLoader(test_images, test_labels, test_batch_size, info.mean, info.std, device,
                                   train=False, shuffle=False)
        return train_loader, test_loader, len(train_labels)

    train_set = _wrap(train_images, train_labels, info, True, aug, variant, nce_k, mode)
    test_set = _wrap(test_images, test_labels, info, False, aug, "plain", nce_k, mode)
    # Workers are not persistent: each epoch starts fresh ones seeded from torch's global
    # RNG, so a run resumed from a checkpoint's RNG state draws the same augmentations
    # and negatives as the run it continues (persistent workers would carry RNG state
    # that no checkpoint holds).
    common = dict(num_workers=num_workers, pin_memory=device.type == "cuda")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    sampler, seed_worker = None, None
    if shard[1] > 1:
        sampler = ShardedRandomSampler(len(train_set), shard)
        seed_worker = functools.partial(seed_worker_of_rank, shard[0])
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=sampler is None,
                                               sampler=sampler, drop_last=False, generator=generator,
                                               worker_init_fn=seed_worker, **common)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=test_batch_size, shuffle=False,
                                              drop_last=False, **common)
    return train_loader, test_loader, len(train_set)


def train_labels(loader):
    """int64 numpy labels of the whole data set behind a training loader of build_loaders."""
    labels = loader.labels if isinstance(loader, DeviceLoader) else loader.dataset.labels
    return torch.as_tensor(labels).cpu().numpy()


def smallest_contrast_pool(labels):
    """(size, class): the fewest other-class samples any class has to draw CTC negatives from
    (those of the most frequent class; the first such class on a tie)."""
    counts = np.bincount(labels)
    largest = int(counts.argmax())
    return len(labels) - int(counts[largest]), largest


def _wrap(images, labels, info, train, aug, variant, nce_k, mode):
    transform = make_transform(train, aug, info.mean, info.std)
    contrast = ContrastIndexSampler(_contrast_labels(labels, info), nce_k, mode) if variant == "ctc" else None
    return ArrayDataset(images, labels, transform, variant, contrast)


def _contrast_labels(labels, info):
    if len(np.unique(labels)) < 2:
        raise UserError(f"{info.name}: CTC contrast sampling needs samples of at least two classes")
    return labels


def _resolve_loader(loader, aug, device, data_bytes):
    if loader == "gpu" and aug == "auto":
        raise UserError("augmentation 'auto' (AutoAugment + Cutout) exists only in the torch DataLoader "
                        "path; choose the torch loader or another augmentation")
    if loader != "auto":
        return loader
    if device.type != "cuda" or aug == "auto":
        return "torch"
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return "gpu" if data_bytes < GPU_MEMORY_SHARE * free_bytes else "torch"


def _check_choices(**given):
    allowed = {"aug": AUGMENTATIONS, "variant": VARIANTS, "mode": CONTRAST_MODES, "loader": LOADERS}
    for option, value in given.items():
        if value not in allowed[option]:
            raise UserError(f"{option} '{value}' is not one of {', '.join(allowed[option])}")


def _source(name):
    if name not in SOURCES:
        raise UserError(f"unknown data set '{name}': use one of {', '.join(SOURCES)} or folder:<path>")
    return SOURCES[name]


def canonical_name(name):
    """The name results rows store: 'folder:<path>' with the path made absolute, so that
    'folder:imgs', 'folder:./imgs/' and 'folder:/data/imgs' are one data set."""
    if name.startswith(FOLDER_PREFIX) and name[len(FOLDER_PREFIX):]:
        return FOLDER_PREFIX + str(_folder_path(name).resolve())
    return name


def dataset_tag(name):
    """A data set name usable in a file or folder name ('folder:/a/b' -> 'folder-b')."""
    if name.startswith(FOLDER_PREFIX):
        return "folder-" + Path(name[len(FOLDER_PREFIX):]).name
    return name


def _folder_path(name):
    path = Path(name[len(FOLDER_PREFIX):]).expanduser()
    if not name[len(FOLDER_PREFIX):]:
        raise UserError("data set 'folder:' needs a path, e.g. folder:/data/my_images")
    return path
