"""Tiny synthetic data sets written in the real on-disk formats, for tests and the offline demo.

Every image carries a class signal (a class colour plus a class-specific stripe
pattern, with pixel noise), so small models can learn them in an epoch or two.
The class signal depends only on the class index, never on `seed`, so a train
set and a test set written by separate calls agree on what each class looks like.

Each writer returns what it wrote as uint8 HWC arrays and int64 labels, in the
order the loaders read them back, so tests can compare pixel for pixel.
"""
import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CINIC10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def class_images(labels, size=32, rng=None, noise=12.0):
    """uint8 [N, size, size, 3]: class colour + class stripe pattern + noise."""
    rng = np.random.default_rng(0) if rng is None else rng
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = int(labels.max()) + 1 if len(labels) else 1
    signal_rng = np.random.default_rng(20220723)  # fixed: the class signal must not depend on `seed`
    palette = signal_rng.uniform(50, 205, size=(num_classes, 3))
    frequency = signal_rng.uniform(1, 4, size=(num_classes, 2)) * signal_rng.choice([-1, 1], size=(num_classes, 2))
    grid_y, grid_x = np.mgrid[0:size, 0:size] / size
    phase = 2 * np.pi * (frequency[labels, 0, None, None] * grid_x + frequency[labels, 1, None, None] * grid_y)
    stripes = 45 * np.sin(phase)[..., None]
    images = palette[labels, None, None, :] + stripes + rng.normal(0, noise, size=(len(labels), size, size, 3))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def balanced_labels(count, num_classes, rng):
    """Every class as evenly as possible (all present when count >= num_classes), shuffled."""
    return rng.permutation(np.arange(count) % num_classes).astype(np.int64)


def _cifar_rows(images):
    # The CIFAR pickles store each image as 3072 bytes: the R plane, then G, then B, each row-major.
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def _pickle(path, obj):
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def _split_sets(n_train, n_test, num_classes, seed):
    rng = np.random.default_rng(seed)
    sets = {}
    for split, count in (("train", n_train), ("test", n_test)):
        labels = balanced_labels(count, num_classes, rng)
        sets[split] = (class_images(labels, 32, rng), labels)
    return sets


def write_cifar100(root, n_train=500, n_test=200, seed=0):
    """`{root}/cifar-100-python/{train,test,meta}`; returns {'train'|'test': (images, labels)}."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    sets = _split_sets(n_train, n_test, 100, seed)
    for split, (images, labels) in sets.items():
        _pickle(folder / split, {
            "filenames": [f"fake_{split}_{i}.png" for i in range(len(labels))],
            "batch_label": f"{split}ing batch 1 of 1",
            "fine_labels": labels.tolist(),
            "coarse_labels": (labels // 5).tolist(),
            "data": _cifar_rows(images),
        })
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)],
                              "coarse_label_names": [f"super{i}" for i in range(20)]})
    return sets


def write_cifar10(root, n_train=500, n_test=200, seed=0):
    """`{root}/cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta`.

    The train set is split over the five batches in order; returns
    {'train'|'test': (images, labels)} with train in data_batch_1..5 order.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    sets = _split_sets(n_train, n_test, 10, seed)
    train_images, train_labels = sets["train"]
    batches = [(f"data_batch_{b + 1}", part) for b, part in enumerate(np.array_split(np.arange(n_train), 5))]
    batches.append(("test_batch", None))
    for name, part in batches:
        images, labels = sets["test"] if part is None else (train_images[part], train_labels[part])
        _pickle(folder / name, {
            "batch_label": name,
            "labels": labels.tolist(),
            "data": _cifar_rows(images),
            "filenames": [f"fake_{name}_{i}.png" for i in range(len(labels))],
        })
    _pickle(folder / "batches.meta", {"label_names": list(CINIC10_CLASSES),
                                      "num_cases_per_batch": max(1, n_train // 5), "num_vis": 3072})
    return sets


def write_image_folder(path, classes, n_per_class_per_split, splits=("train", "valid", "test"),
                       size=32, seed=0, gray=False):
    """`<path>/<split>/<class>/*.png` (the CINIC-10 layout when path is root/'CINIC-10').

    `classes` is a list of folder names or a count (then 'class00', 'class01', ...).
    Returns {split: (images, labels)} in the loaders' order (class folders sorted,
    files sorted); gray images are returned repeated to 3 channels.
    """
    names = sorted(classes) if not isinstance(classes, int) else [f"class{i:02d}" for i in range(classes)]
    rng = np.random.default_rng(seed)
    written = {}
    for split in splits:
        labels = np.repeat(np.arange(len(names)), n_per_class_per_split).astype(np.int64)
        images = class_images(labels, size, rng)
        if gray:
            images = np.repeat(images.mean(axis=3, keepdims=True).round().astype(np.uint8), 3, axis=3)
        for number, (image, label) in enumerate(zip(images, labels)):
            folder = Path(path) / split / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            picture = Image.fromarray(image[..., 0] if gray else image)
            picture.save(folder / f"{split}-{number:06d}.png")
        written[split] = (images, labels)
    return written


def write_stl10(root, n_train=100, n_test=50, seed=0, size=96):
    """`{root}/stl10_binary/{train,test}_{X,y}.bin`: column-major 3 x size x size, labels 1..10.

    Returns {'train'|'test': (images [N, size, size, 3], labels 0..9)}.
    """
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for split, count in (("train", n_train), ("test", n_test)):
        labels = balanced_labels(count, 10, rng)
        images = class_images(labels, size, rng)
        # Column-major per channel: the file holds [N, 3, W, H] in C order.
        images.transpose(0, 3, 2, 1).astype(np.uint8).tofile(folder / f"{split}_X.bin")
        (labels + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
        written[split] = (images, labels)
    (folder / "class_names.txt").write_text("\n".join(CINIC10_CLASSES) + "\n")
    return written


def write_idx_gray(root, folder, prefixes, num_classes, n_train=60, n_test=30, seed=0, gz=True):
    """`{root}/{folder}/raw/{prefix}-{images-idx3,labels-idx1}-ubyte[.gz]` as torchvision downloads
    Fashion-MNIST (folder 'FashionMNIST') and EMNIST ('EMNIST'). Returns {split: (images [N, 28, 28], labels)}."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for split, count in (("train", n_train), ("test", n_test)):
        labels = balanced_labels(count, num_classes, rng)
        images = class_images(labels, 28, rng).mean(axis=3).round().astype(np.uint8)
        for kind, magic, array in (("images-idx3", 2051, images), ("labels-idx1", 2049, labels.astype(np.uint8))):
            header = np.array([magic, *array.shape], dtype=">i4").tobytes()
            path = raw / f"{prefixes[split]}-{kind}-ubyte"
            (gzip.open if gz else open)(f"{path}.gz" if gz else path, "wb").write(header + array.tobytes())
        written[split] = (images, labels)
    return written
