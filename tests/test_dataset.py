"""Data loaders read the real on-disk formats (written small by tests/fakedata.py)."""
import numpy as np
import pytest
import torch
from PIL import Image

import dataset
import dataset.common
from dataset.arrays import ContrastIndexSampler
from tests import fakedata
from util import UserError


def normalised(pixel, info):
    return (np.asarray(pixel) / 255.0 - np.asarray(info.mean)) / np.asarray(info.std)


# --------------------------------------------------------------------------- formats

@pytest.mark.parametrize("name, writer", [("cifar100", fakedata.write_cifar100), ("cifar10", fakedata.write_cifar10)])
def test_cifar_pickles_read_back_exactly(tmp_path, name, writer):
    written = writer(tmp_path, n_train=120, n_test=30, seed=1)
    for split in ("train", "test"):
        images, labels = dataset.load_arrays(name, tmp_path, split)
        assert images.dtype == np.uint8 and images.shape == (len(written[split][1]), 32, 32, 3)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])


def test_cinic10_reads_train_and_evaluates_on_valid(tmp_path):
    written = fakedata.write_image_folder(tmp_path / "CINIC-10", fakedata.CINIC10_CLASSES, 3, seed=2)
    for split, folder in (("train", "train"), ("test", "valid")):
        images, labels = dataset.load_arrays("cinic10", tmp_path, split)
        np.testing.assert_array_equal(images, written[folder][0])
        np.testing.assert_array_equal(labels, written[folder][1])
    assert not np.array_equal(dataset.load_arrays("cinic10", tmp_path, "test")[0], written["test"][0])
    assert dataset.dataset_info("cinic10").mean == (0.47889522, 0.47227842, 0.43047404)


def test_image_folder_cache_is_used_and_refreshed(tmp_path, monkeypatch):
    written = fakedata.write_image_folder(tmp_path / "CINIC-10", fakedata.CINIC10_CLASSES, 2, splits=("train", "valid"))
    dataset.load_arrays("cinic10", tmp_path, "test")
    caches = list((tmp_path / ".cache").glob("cinic10-valid-*.npz"))
    assert len(caches) == 1

    def no_decoding(paths):
        raise AssertionError("a valid cache must not be decoded again")
    monkeypatch.setattr(dataset.folder, "decode_images", no_decoding)
    images, _ = dataset.load_arrays("cinic10", tmp_path, "test")
    np.testing.assert_array_equal(images, written["valid"][0])

    monkeypatch.undo()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "CINIC-10" / "valid" / "cat" / "zz.png")
    images, labels = dataset.load_arrays("cinic10", tmp_path, "test")
    cat = np.flatnonzero(labels == 3)  # 'cat' is the 4th class; the new file sorts last within it
    assert len(labels) == 21 and len(cat) == 3 and (images[cat[-1]] == [1, 2, 3]).all()
    refreshed = list((tmp_path / ".cache").glob("cinic10-valid-*.npz"))
    assert len(refreshed) == 1 and refreshed != caches  # the stale cache was replaced


def test_folder_dataset_resizes_converts_gray_and_prefers_test(tmp_path):
    root = tmp_path / "pets"
    fakedata.write_image_folder(root, ["b_dog", "a_cat"], 2, splits=("train", "valid"), size=32, seed=3)
    test = fakedata.write_image_folder(root, ["b_dog", "a_cat"], 2, splits=("test",), size=32, gray=True, seed=4)
    images, labels = dataset.load_arrays(f"folder:{root}", None, "test")
    np.testing.assert_array_equal(images, test["test"][0])  # test/ wins over valid/, gray -> 3 equal channels
    np.testing.assert_array_equal(labels, test["test"][1])
    assert dataset.dataset_info(f"folder:{root}").num_classes == 2

    big = tmp_path / "big"
    fakedata.write_image_folder(big, 2, 1, splits=("train", "valid"), size=64)
    Image.new("RGB", (64, 48), (10, 200, 30)).save(big / "train" / "class01" / "flat.png")
    images, labels = dataset.load_arrays(f"folder:{big}", None, "train")
    assert images.shape == (3, 32, 32, 3) and labels.tolist() == [0, 1, 1]
    assert (images[labels == 1][0] == [10, 200, 30]).all()  # 'flat' sorts before 'train-...'


def test_stl10_is_column_major_and_resized(tmp_path):
    written = fakedata.write_stl10(tmp_path, n_train=20, n_test=10, seed=5)
    images, labels = dataset.load_arrays("stl10", tmp_path, "test")
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, written["test"][1])
    assert labels.min() >= 0 and labels.max() <= 9
    # PIL's bilinear resize antialiases when shrinking: an independent reference for the same filter
    expected = np.stack([np.asarray(Image.fromarray(image).resize((32, 32), Image.Resampling.BILINEAR))
                         for image in written["test"][0]])
    assert np.abs(images.astype(int) - expected).max() <= 1


def test_stl10_orientation_with_a_half_bright_image(tmp_path):
    fakedata.write_stl10(tmp_path, n_train=10, n_test=10)
    image = np.zeros((1, 96, 96, 3), dtype=np.uint8)
    image[:, :, :48] = 255  # left half bright
    image.transpose(0, 3, 2, 1).tofile(tmp_path / "stl10_binary" / "test_X.bin")
    np.array([3], dtype=np.uint8).tofile(tmp_path / "stl10_binary" / "test_y.bin")
    images, labels = dataset.load_arrays("stl10", tmp_path, "test")
    assert labels.tolist() == [2]
    assert (images[0, :, :15] == 255).all() and (images[0, :, 17:] == 0).all()


# --------------------------------------------------------------------------- clear errors

def test_unknown_names_and_options_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown data set 'imagenet'"):
        dataset.dataset_info("imagenet")
    assert dataset.dataset_info("cifar100") == ("cifar100", 100, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
    assert dataset.dataset_info("stl10").mean == dataset.dataset_info("cifar10").mean == (0.5071, 0.4867, 0.4408)
    fakedata.write_cifar100(tmp_path, 20, 10)
    with pytest.raises(UserError, match="aug 'flip'"):
        dataset.build_dataset("cifar100", tmp_path, "train", aug="flip")
    with pytest.raises(UserError, match="auto"):
        dataset.build_loaders("cifar100", tmp_path, 8, 0, aug="auto", loader="gpu")


@pytest.mark.parametrize("name, folder, url", [
    ("cifar100", "cifar-100-python", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    ("cifar10", "cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
])
def test_missing_cifar_tries_the_official_download_then_explains(tmp_path, monkeypatch, name, folder, url):
    calls = []

    def offline(url, download_root, md5):
        calls.append((url, md5))
        raise OSError("Name or service not known")
    monkeypatch.setattr(dataset.common, "download_and_extract_archive", offline)
    with pytest.raises(UserError) as caught:
        dataset.load_arrays(name, tmp_path / "data", "train")
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "data" / folder) in message and url in message
    assert calls == [(url, dataset.SOURCES[name].MD5)]


def test_download_path_loads_what_was_extracted(tmp_path, monkeypatch):
    def fake_download(url, download_root, md5):
        fake_download.written = fakedata.write_cifar100(download_root, 10, 5)
    monkeypatch.setattr(dataset.common, "download_and_extract_archive", fake_download)
    images, labels = dataset.load_arrays("cifar100", tmp_path, "test")
    np.testing.assert_array_equal(labels, fake_download.written["test"][1])


def test_partial_cifar_folder_is_not_overwritten(tmp_path, monkeypatch):
    fakedata.write_cifar100(tmp_path, 10, 5)
    (tmp_path / "cifar-100-python" / "test").unlink()
    monkeypatch.setattr(dataset.common, "download_and_extract_archive", None)  # calling it would fail loudly
    with pytest.raises(UserError, match=f"{tmp_path / 'cifar-100-python' / 'test'} is missing"):
        dataset.load_arrays("cifar100", tmp_path, "test")


def test_corrupt_pickle_names_the_file(tmp_path):
    fakedata.write_cifar100(tmp_path, 10, 5)
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cifar-100-python/train cannot be read"):
        dataset.load_arrays("cifar100", tmp_path, "train")


def test_missing_cinic_stl_and_folder_data_explain_where_and_how(tmp_path):
    with pytest.raises(UserError) as caught:
        dataset.load_arrays("cinic10", tmp_path, "train")
    assert str(tmp_path / "CINIC-10") in str(caught.value) and "github.com/BayesWatch/cinic-10" in str(caught.value)
    fakedata.write_image_folder(tmp_path / "CINIC-10", fakedata.CINIC10_CLASSES, 1, splits=("train", "test"))
    with pytest.raises(UserError, match="CINIC-10 split 'valid' is missing"):
        dataset.load_arrays("cinic10", tmp_path, "test")
    with pytest.raises(UserError, match="stl10_binary/train_X.bin does not exist.*stl10_binary.tar.gz"):
        dataset.load_arrays("stl10", tmp_path, "train")
    with pytest.raises(UserError, match="nowhere/train does not exist"):
        dataset.load_arrays(f"folder:{tmp_path / 'nowhere'}", None, "train")


def test_empty_or_mismatched_class_folders_are_user_errors(tmp_path):
    root = tmp_path / "set"
    fakedata.write_image_folder(root, ["a", "b"], 1, splits=("train", "valid"))
    (root / "train" / "c").mkdir()
    with pytest.raises(UserError, match="train/c holds no image files"):
        dataset.load_arrays(f"folder:{root}", None, "train")
    (root / "train" / "c" / "notes.txt").write_text("not an image")
    with pytest.raises(UserError, match="holds no image files"):
        dataset.load_arrays(f"folder:{root}", None, "train")
    (root / "train" / "c" / "notes.txt").unlink()
    (root / "train" / "c").rmdir()
    (root / "valid" / "b").rename(root / "valid" / "z")
    with pytest.raises(UserError, match="differ from those of"):
        dataset.load_arrays(f"folder:{root}", None, "test")
    (root / "valid" / "z").rename(root / "valid" / "b")
    (root / "valid" / "b" / "valid-000001.png").write_bytes(b"broken")
    with pytest.raises(UserError, match="cannot read image .*valid-000001.png"):
        dataset.load_arrays(f"folder:{root}", None, "test")


# --------------------------------------------------------------------------- torch Dataset path

def test_test_split_is_normalised_only_and_variants_carry_index(tmp_path):
    written = fakedata.write_cifar100(tmp_path, 50, 20, seed=6)
    info = dataset.dataset_info("cifar100")
    test_set = dataset.build_dataset("cifar100", tmp_path, "test", aug="vanilla")
    img, target = test_set[7]
    assert img.dtype == torch.float32 and img.shape == (3, 32, 32) and target == written["test"][1][7]
    expected = normalised(written["test"][0][7], info).transpose(2, 0, 1)
    np.testing.assert_allclose(img.numpy(), expected, atol=1e-5)

    mine = dataset.build_dataset("cifar100", tmp_path, "train", aug="mine", variant="instance")
    img, target, index = mine[11]
    assert index == 11 and target == written["train"][1][11]
    np.testing.assert_allclose(img.numpy(), normalised(written["train"][0][11], info).transpose(2, 0, 1), atol=1e-5)


def test_train_augmentations_crop_flip_and_cutout(tmp_path):
    fakedata.write_cifar10(tmp_path, 20, 10)
    np.random.seed(0)
    torch.manual_seed(0)
    vanilla = dataset.build_dataset("cifar10", tmp_path, "train", aug="vanilla")
    assert not torch.equal(vanilla[0][0], vanilla[0][0])  # random crop/flip differ between draws
    auto = dataset.build_dataset("cifar10", tmp_path, "train", aug="auto")
    for _ in range(5):
        img = auto[1][0]
        assert img.shape == (3, 32, 32)
        rows, cols = np.nonzero((img == 0).all(dim=0).numpy())
        # the hole is a 16x16 square clipped by the border: at least 8x8 of it is inside
        assert rows.max() - rows.min() + 1 >= 8 and cols.max() - cols.min() + 1 >= 8
        assert (img[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1] == 0).all()


def check_contrast_rows(rows, indices, labels, k, mode):
    """The CTC contract, row by row; returns whether any row repeated a negative."""
    repeated = False
    for row, index in zip(rows, indices):
        assert row.dtype == np.int64 and row.shape == (k + 1,)
        if mode == "exact":
            assert row[0] == index
        else:
            assert labels[row[0]] == labels[index]
        negatives = row[1:]
        assert (labels[negatives] != labels[index]).all()
        pool = (labels != labels[index]).sum()
        if k <= pool:
            assert len(np.unique(negatives)) == k
        repeated |= len(np.unique(negatives)) < k
    return repeated


@pytest.mark.parametrize("mode", ["exact", "relax"])
def test_ctc_dataset_variant(tmp_path, mode):
    written = fakedata.write_cifar10(tmp_path, 60, 10)
    labels = written["train"][1]
    np.random.seed(1)
    ctc = dataset.build_dataset("cifar10", tmp_path, "train", variant="ctc", nce_k=40, mode=mode)
    items = [ctc[i] for i in range(0, 60, 3)]
    assert all(target == labels[index] for _, target, index, _ in items)
    check_contrast_rows([item[3] for item in items], [item[2] for item in items], labels, 40, mode)
    if mode == "relax":
        assert any(item[3][0] != item[2] for item in items)


def test_ctc_numpy_sampler_large_k_repeats_but_stays_other_class():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 4)
    sampler = ContrastIndexSampler(labels, k=20, mode="relax")
    np.random.seed(2)
    rows = [sampler.sample(i, labels[i]) for i in range(12)]
    assert check_contrast_rows(rows, range(12), labels, 20, "relax")
    sampler = ContrastIndexSampler(labels, k=7, mode="exact")  # pool of class 0 is exactly 7: no repeats
    for _ in range(50):
        assert sorted(sampler.sample(0, 0)[1:]) == list(range(5, 12))
    sampler = ContrastIndexSampler(labels, k=2, mode="exact")
    counts = np.bincount(np.concatenate([sampler.sample(6, 1)[1:] for _ in range(900)]), minlength=12)
    assert counts[5:8].sum() == 0 and np.all(np.abs(counts[[0, 1, 2, 3, 4, 8, 9, 10, 11]] - 200) < 60)


# --------------------------------------------------------------------------- loaders

def test_torch_loaders_shapes_order_and_last_batch(tmp_path):
    written = fakedata.write_cifar100(tmp_path, 70, 25, seed=7)
    train, test, num_train = dataset.build_loaders("cifar100", tmp_path, batch_size=32, num_workers=0,
                                                   variant="instance", test_batch_size=10, seed=3)
    assert num_train == 70 and isinstance(train, torch.utils.data.DataLoader)
    batches = list(train)
    assert [len(b[0]) for b in batches] == [32, 32, 6]
    indices = torch.cat([b[2] for b in batches])
    assert sorted(indices.tolist()) == list(range(70))
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.as_tensor(written["train"][1])[indices])
    again = torch.cat([b[2] for b in dataset.build_loaders("cifar100", tmp_path, 32, 0, variant="instance",
                                                           seed=3)[0]])
    assert torch.equal(indices, again)  # same seed, same order
    test_batches = list(test)
    assert [len(b) for b in test_batches] == [2] * 3 and [len(b[0]) for b in test_batches] == [10, 10, 5]
    np.testing.assert_array_equal(torch.cat([b[1] for b in test_batches]).numpy(), written["test"][1])


def test_ctc_negatives_in_workers_repeat_with_the_seed(tmp_path):
    # DataLoader seeds numpy in each worker from its own seed, which `seed` fixes.
    fakedata.write_cifar10(tmp_path, 40, 10)

    def contrast_rows(seed):
        train, test, _ = dataset.build_loaders("cifar10", tmp_path, batch_size=4, num_workers=2, variant="ctc",
                                               nce_k=8, seed=seed)
        assert not train.persistent_workers and test.num_workers == 2 and not train.pin_memory
        return torch.cat([batch[3] for _, batch in zip(range(4), train)])

    first = contrast_rows(seed=5)
    assert torch.equal(first, contrast_rows(seed=5))
    assert not torch.equal(first, contrast_rows(seed=6))


def test_gpu_and_auto_loader_choice_on_cpu(tmp_path):
    written = fakedata.write_cifar100(tmp_path, 30, 12)
    train, test, num_train = dataset.build_loaders("cifar100", tmp_path, 8, 0, variant="ctc", nce_k=5,
                                                   loader="gpu", device="cpu", seed=0)
    assert isinstance(train, dataset.DeviceLoader) and num_train == 30 and len(train) == 4
    img, target, index, contrast = next(iter(train))
    assert img.shape == (8, 3, 32, 32) and contrast.shape == (8, 6)
    assert torch.equal(target, torch.as_tensor(written["train"][1])[index])
    assert [len(batch) for batch in test] == [2, 2] and test.dataset_size == 12
    auto_train, _, _ = dataset.build_loaders("cifar100", tmp_path, 8, 0, loader="auto", device="cpu")
    assert isinstance(auto_train, torch.utils.data.DataLoader)
