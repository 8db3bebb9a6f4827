"""CIFAR-100 in the python-pickle layout `{root}/cifar-100-python/{train,test,meta}`."""
from dataset.common import CIFAR100_MEAN, CIFAR100_STD, DatasetInfo, cifar_batch_arrays, ensure_cifar

INFO = DatasetInfo("cifar100", 100, CIFAR100_MEAN, CIFAR100_STD)
URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"


def load(root, split):
    """(uint8 [N, 32, 32, 3], int64 [N]) of the 'train' or 'test' pickle (fine labels)."""
    path = ensure_cifar(root, "cifar-100-python", split, URL, MD5, "CIFAR-100")
    return cifar_batch_arrays(path, "fine_labels")
