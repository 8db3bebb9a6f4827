"""CIFAR-10 in the python-pickle layout `{root}/cifar-10-batches-py/data_batch_1..5, test_batch`."""
import numpy as np

from dataset.common import CIFAR100_MEAN, CIFAR100_STD, DatasetInfo, cifar_batch_arrays, ensure_cifar

INFO = DatasetInfo("cifar10", 10, CIFAR100_MEAN, CIFAR100_STD)
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
SPLIT_FILES = {"train": [f"data_batch_{b}" for b in range(1, 6)], "test": ["test_batch"]}


def load(root, split):
    """(uint8 [N, 32, 32, 3], int64 [N]); the train set is the five batches in order."""
    parts = [cifar_batch_arrays(ensure_cifar(root, "cifar-10-batches-py", name, URL, MD5, "CIFAR-10"), "labels")
             for name in SPLIT_FILES[split]]
    return np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts])
