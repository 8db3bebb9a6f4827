"""Fashion-MNIST and EMNIST, the gray transfer targets the reference accepts (SPEC 7), in the
idx layout torchvision downloads: `{root}/FashionMNIST/raw/` and `{root}/EMNIST/raw/`.

The 28x28 gray images are resized to 32x32 and repeated to 3 channels, so every model and
loader sees CIFAR-shaped input. EMNIST means its 'balanced' split (47 classes), and its
images are kept as stored, as torchvision returns them. Both are normalised with the
CIFAR-100 numbers, like every target other than CINIC-10.
"""
import gzip
from pathlib import Path

import numpy as np

from dataset.common import CIFAR100_MEAN, CIFAR100_STD, DatasetInfo, resize_images
from util import UserError

IDX_MAGIC = {"images": 2051, "labels": 2049}


class GrayIdxDataset:
    """One idx-format data set: `load(root, split)` -> (uint8 [N, 32, 32, 3], int64 [N])."""

    def __init__(self, name, num_classes, folder, prefixes, download):
        """download: the torchvision call that fetches it, for the message when it is missing."""
        self.INFO = DatasetInfo(name, num_classes, CIFAR100_MEAN, CIFAR100_STD)
        self.folder, self.prefixes, self.download = folder, prefixes, download

    def load(self, root, split):
        raw = Path(root) / self.folder / "raw"
        prefix = self.prefixes[split]
        images = read_idx(self._find(raw, f"{prefix}-images-idx3-ubyte"), "images")
        labels = read_idx(self._find(raw, f"{prefix}-labels-idx1-ubyte"), "labels").astype(np.int64)
        if len(images) != len(labels) or (len(labels) and labels.max() >= self.INFO.num_classes):
            raise UserError(f"{raw}: {len(images)} images with {len(labels)} labels (max {labels.max()}) "
                            f"do not form {self.INFO.name} with {self.INFO.num_classes} classes")
        gray = images[..., None].repeat(3, axis=3)
        return resize_images(gray), labels

    def _find(self, raw, name):
        for candidate in (raw / name, raw / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        call = self.download.format(root=raw.parent.parent)
        raise UserError(f"{self.INFO.name} not found: no {raw / name}[.gz]; get it with python -c \"import "
                        f"torchvision; torchvision.datasets.{call}\"")


def read_idx(path, kind):
    """The array of an idx file (gzip or plain): uint8 [N, rows, cols] images or [N] labels."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise UserError(f"{path} cannot be read ({err})") from None
    dims = 3 if kind == "images" else 1
    header = np.frombuffer(data[:4 * (1 + dims)], dtype=">i4") if len(data) >= 4 * (1 + dims) else []
    if len(header) != 1 + dims or header[0] != IDX_MAGIC[kind]:
        raise UserError(f"{path} is not an idx file of {kind}")
    shape = tuple(int(d) for d in header[1:])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 * (1 + dims))
    if body.size != int(np.prod(shape)):
        raise UserError(f"{path} holds {body.size} bytes where its header promises {list(shape)}: truncated")
    return body.reshape(shape)


fashion_mnist = GrayIdxDataset("fashion-mnist", 10, "FashionMNIST", {"train": "train", "test": "t10k"},
                               "FashionMNIST('{root}', download=True)")
emnist = GrayIdxDataset("emnist", 47, "EMNIST", {"train": "emnist-balanced-train", "test": "emnist-balanced-test"},
                        "EMNIST('{root}', split='balanced', download=True)")
