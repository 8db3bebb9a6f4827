"""Image folders `<split>/<class>/<image>` decoded once into uint8 arrays.

Decoding is done by a thread pool (PIL releases the GIL while it decodes) and the
result is cached as an .npz keyed by every file's name, size and modification
time, so the 90k PNGs of a CINIC-10 split are decoded once, not on every run.
"""
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from dataset.common import IMAGE_SIZE, atomic_save_npz
from util import UserError

CACHE_VERSION = 1  # bump when the decoded form changes, so old caches are ignored
DECODE_CHUNK = 256


def image_extensions():
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def class_names(split_dir):
    """Sorted sub-folder names of `split_dir` (hidden folders such as .cache are not classes)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise UserError(f"image folder {split_dir} does not exist")
    names = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise UserError(f"{split_dir} holds no class sub-folders (expected {split_dir}/<class>/<image files>)")
    return names


def list_images(split_dir, classes):
    """[(path, size, mtime_ns)] and int64 labels, classes in the given order, files sorted by name."""
    extensions = image_extensions()
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = Path(split_dir) / name
        if not folder.is_dir():
            raise UserError(f"class folder {folder} is missing (the train split has class '{name}')")
        entries = sorted((entry for entry in os.scandir(folder)
                          if entry.is_file() and not entry.name.startswith(".")
                          and os.path.splitext(entry.name)[1].lower() in extensions),
                         key=lambda entry: entry.name)
        if not entries:
            raise UserError(f"class folder {folder} holds no image files")
        for entry in entries:
            stat = entry.stat()
            files.append((entry.path, stat.st_size, stat.st_mtime_ns))
        labels.extend([label] * len(entries))
    return files, np.asarray(labels, dtype=np.int64)


def read_split(split_dir, classes, cache_dir, cache_prefix):
    """(uint8 [N, 32, 32, 3], int64 [N]) of one split, through the cache when it is valid."""
    files, labels = list_images(split_dir, classes)
    key = _listing_key(split_dir, classes, files)
    cache_path = Path(cache_dir) / f"{cache_prefix}-{key}.npz"
    cached = _read_cache(cache_path, len(files))
    if cached is not None:
        return cached, labels
    images = decode_images([path for path, _, _ in files])
    _write_cache(cache_path, cache_prefix, images)
    return images, labels


def decode_images(paths):
    """uint8 [N, 32, 32, 3]: RGB (gray and palette images converted), resized bilinear+antialias if needed."""
    images = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)

    def decode_chunk(start):
        for offset, path in enumerate(paths[start:start + DECODE_CHUNK]):
            images[start + offset] = _decode_one(path)

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        for finished in [pool.submit(decode_chunk, start) for start in range(0, len(paths), DECODE_CHUNK)]:
            finished.result()
    return images


def _decode_one(path):
    try:
        with Image.open(path) as picture:
            picture = picture.convert("RGB")
            if picture.size != (IMAGE_SIZE, IMAGE_SIZE):
                # PIL widens the bilinear kernel when shrinking, i.e. it antialiases.
                picture = picture.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            return np.asarray(picture)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def _listing_key(split_dir, classes, files):
    digest = hashlib.sha1(f"v{CACHE_VERSION} {IMAGE_SIZE} {'/'.join(classes)}\n".encode())
    base = len(str(split_dir).rstrip(os.sep)) + 1
    for path, size, mtime in files:
        digest.update(f"{path[base:]}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:16]


def _read_cache(path, count):
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            images = stored["images"]
    except Exception:  # damaged or foreign file: decoding again is always correct
        return None
    if images.dtype != np.uint8 or images.shape != (count, IMAGE_SIZE, IMAGE_SIZE, 3):
        return None
    return images


def _write_cache(path, prefix, images):
    """Best effort: a read-only data folder just means decoding again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npz(path, images=images)
        for stale in path.parent.glob(f"{prefix}-*.npz"):
            if stale != path:
                stale.unlink()
    except OSError:
        pass


# --------------------------------------------------------------------------- 'folder:<path>' data sets

EVAL_SPLIT_DIRS = ("test", "valid")  # the evaluation split: test/ if present, else valid/


def folder_split_dir(path, split):
    path = Path(path)
    if split == "train":
        return path / "train"
    for name in EVAL_SPLIT_DIRS:
        if (path / name).is_dir():
            return path / name
    raise UserError(f"image folder data set {path} has no test/ or valid/ folder for evaluation")


def load_split_with_classes(split_dir, train_dir, cache_dir, cache_prefix):
    """Decode `split_dir`, labelling by the train split's sorted class folders (both must agree)."""
    classes = class_names(train_dir)
    if Path(split_dir) != Path(train_dir):
        found = class_names(split_dir)
        if found != classes:
            raise UserError(f"class folders of {split_dir} ({_summary(found)}) differ from those of "
                            f"{train_dir} ({_summary(classes)}); both splits need the same classes")
    return read_split(split_dir, classes, cache_dir, cache_prefix)


def load_folder(path, split):
    """'folder:<path>': `<path>/train/<class>/*`, evaluated on `<path>/test` or `<path>/valid`."""
    path = Path(path)
    if not (path / "train").is_dir():
        raise UserError(f"image folder data set {path}: {path / 'train'} does not exist "
                        f"(expected {path}/train/<class>/<images> and {path}/test or {path}/valid)")
    split_dir = folder_split_dir(path, split)
    return load_split_with_classes(split_dir, path / "train", path / ".cache", split_dir.name)


def _summary(names, shown=5):
    return ", ".join(names[:shown]) + (f" ... ({len(names)} in all)" if len(names) > shown else "")
