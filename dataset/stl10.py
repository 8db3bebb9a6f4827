"""STL-10 in its binary layout `{root}/stl10_binary/{train,test}_{X,y}.bin`.

Images are 3x96x96 uint8 stored column-major and are resized to 32x32 once, at
load time; labels in the files run 1..10.
"""
from pathlib import Path

import numpy as np

from dataset.common import CIFAR100_MEAN, CIFAR100_STD, DatasetInfo, resize_images
from util import UserError

INFO = DatasetInfo("stl10", 10, CIFAR100_MEAN, CIFAR100_STD)
URL = "https://cs.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
SIDE = 96


def load(root, split):
    folder = Path(root) / "stl10_binary"
    images_path, labels_path = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    for path in (images_path, labels_path):
        if not path.is_file():
            raise UserError(f"STL-10 not found: {path} does not exist; "
                            f"download {URL} and extract it into {Path(root)}/")
    raw = np.fromfile(images_path, dtype=np.uint8)
    labels = np.fromfile(labels_path, dtype=np.uint8).astype(np.int64) - 1
    image_bytes = 3 * SIDE * SIDE
    if raw.size % image_bytes or raw.size // image_bytes != len(labels):
        raise UserError(f"{images_path} ({raw.size} bytes) does not hold {len(labels)} images of 3x{SIDE}x{SIDE} "
                        f"as {labels_path} says; the files are truncated or from another data set")
    if len(labels) and (labels.min() < 0 or labels.max() >= INFO.num_classes):
        raise UserError(f"{labels_path} holds labels outside 1..10")
    # Each channel is column-major: the file is [N, C, W, H] in C order.
    images = raw.reshape(-1, 3, SIDE, SIDE).transpose(0, 3, 2, 1)
    return resize_images(images), labels
