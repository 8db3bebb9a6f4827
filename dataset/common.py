"""What every data set module shares: normalisation numbers, CIFAR pickles and
their download, resizing to 32x32, and atomic cache writes."""
import collections
import pickle
import socket
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.datasets.utils import check_integrity, download_and_extract_archive

from util import UserError, atomic_write

DatasetInfo = collections.namedtuple("DatasetInfo", "name num_classes mean std")

# SPEC 4: the reference normalises CIFAR-10, STL-10 (and so our image folders) with CIFAR-100's numbers.
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
CINIC10_MEAN = (0.47889522, 0.47227842, 0.43047404)
CINIC10_STD = (0.24205776, 0.23828046, 0.25874835)

IMAGE_SIZE = 32
DOWNLOAD_TIMEOUT_S = 30


# --------------------------------------------------------------------------- CIFAR pickles

def read_cifar_pickle(path):
    """One CIFAR python pickle as a dict with str keys (the official files are Python 2 pickles)."""
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, AttributeError) as err:
        raise UserError(f"{path} cannot be read as a CIFAR python pickle ({type(err).__name__}: {err}); "
                        f"delete its folder and download the data again") from None
    if not isinstance(batch, dict):
        raise UserError(f"{path} is not a CIFAR python pickle (it holds a {type(batch).__name__}, not a dict)")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}


def cifar_batch_arrays(path, label_key):
    """(uint8 [N, 32, 32, 3], int64 [N]) from one pickle whose rows are R, G, B planes of 32x32."""
    batch = read_cifar_pickle(path)
    if "data" not in batch or label_key not in batch:
        raise UserError(f"{path} lacks the '{label_key}' or 'data' entry of a CIFAR pickle (keys: {sorted(batch)})")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE or len(labels) != len(data):
        raise UserError(f"{path}: expected data [N, 3072] with N labels, found data {list(data.shape)} "
                        f"and {len(labels)} labels")
    images = data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def ensure_cifar(root, folder_name, needed_file, url, md5, title):
    """Path of `needed_file` in `{root}/{folder_name}`, downloading the official archive if the folder is absent.

    A folder that exists but lacks the file is never overwritten by a download:
    it may be a subset the user made on purpose.
    """
    folder = Path(root) / folder_name
    path = folder / needed_file
    if path.is_file():
        return path
    if folder.is_dir():
        raise UserError(f"{title}: {path} is missing; restore it or delete {folder} to download the "
                        f"official archive {url} again")
    archive = Path(root) / Path(url).name
    # Folders the download creates (a mistyped --data_root and its missing parents), deepest first.
    created = [missing for missing in (Path(root), *Path(root).parents) if not missing.exists()]
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            download_and_extract_archive(url, download_root=str(root), md5=md5)
    except BaseException as err:  # offline, refused, truncated, checksum mismatch, Ctrl-C
        if archive.is_file() and not check_integrity(str(archive), md5):
            archive.unlink()  # a partial download would only confuse the next try
        _remove_empty(created)
        if not isinstance(err, Exception):
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{title} not found in {folder} and the download of {url} failed ({reason[:120]}); "
                        f"download that archive elsewhere and extract it into {Path(root)}/") from None
    if not path.is_file():
        raise UserError(f"{title}: the archive from {url} was extracted but {path} is still missing")
    return path


def _remove_empty(folders):
    """Remove `folders` (deepest first) while they are empty: what a failed download created."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty, or already gone: the folders above it stay as well
            return


@contextmanager
def _socket_timeout(seconds):
    # torchvision opens URLs without a timeout; a silent firewall would otherwise hang the run forever.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


# --------------------------------------------------------------------------- images

def resize_images(images, size=IMAGE_SIZE, chunk=1024):
    """uint8 [N, H, W, 3] -> uint8 [N, size, size, 3], bilinear with antialiasing (like PIL's resize)."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + chunk])).permute(0, 3, 1, 2).float()
        resized = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + chunk] = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


# --------------------------------------------------------------------------- cache files

def atomic_save_npz(path, **arrays):
    """np.savez through a temp file and a rename, so a killed run never leaves a truncated cache."""
    atomic_write(path, lambda handle: np.savez(handle, **arrays))
