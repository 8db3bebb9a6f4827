"""Fashion-MNIST and EMNIST as transfer targets: idx files read, resized to 32, made RGB."""
import numpy as np
import pytest
import torch

import transfer
import util
from helper.results import read_results
from helper.run import checkpoint_path
from dataset import dataset_info, load_arrays
from dataset.common import resize_images
from dataset.synthetic import write_idx_gray
from models import build_model

FASHION = {"train": "train", "test": "t10k"}
EMNIST = {"train": "emnist-balanced-train", "test": "emnist-balanced-test"}


@pytest.mark.parametrize("name, folder, prefixes, classes, gz", [
    ("fashion-mnist", "FashionMNIST", FASHION, 10, True),
    ("emnist", "EMNIST", EMNIST, 47, False),
])
def test_idx_files_load_as_32x32_rgb_with_their_labels(tmp_path, name, folder, prefixes, classes, gz):
    written = write_idx_gray(tmp_path, folder, prefixes, classes, n_train=94, n_test=47, gz=gz)
    assert dataset_info(name).num_classes == classes
    for split in ("train", "test"):
        images, labels = load_arrays(name, tmp_path, split)
        gray, expected_labels = written[split]
        assert images.shape == (len(gray), 32, 32, 3) and images.dtype == np.uint8
        assert np.array_equal(labels, expected_labels)
        assert np.array_equal(images[..., 0], images[..., 2])   # gray repeated to 3 channels
        assert np.array_equal(images, resize_images(np.repeat(gray[..., None], 3, axis=3)))


def test_missing_and_truncated_files_are_named(tmp_path):
    with pytest.raises(util.UserError, match="FashionMNIST/raw/train-images-idx3-ubyte.*torchvision.datasets.FashionMNIST"):
        load_arrays("fashion-mnist", tmp_path, "train")
    with pytest.raises(util.UserError, match=r"EMNIST\('.*', split='balanced', download=True\)"):
        load_arrays("emnist", tmp_path, "train")
    write_idx_gray(tmp_path, "FashionMNIST", FASHION, 10, gz=False)
    path = tmp_path / "FashionMNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(util.UserError, match="truncated"):
        load_arrays("fashion-mnist", tmp_path, "train")


def test_transfer_to_fashion_mnist(tmp_path, monkeypatch, capsys):
    write_idx_gray(tmp_path / "data", "FashionMNIST", FASHION, 10, n_train=40, n_test=20)
    torch.manual_seed(0)
    util.atomic_save({"epoch": 2, "model": build_model("resnet8", 100).state_dict(), "accuracy": 1.0},
                     checkpoint_path(tmp_path / "run", 2))
    monkeypatch.chdir(tmp_path)
    transfer.main(["--target_dataset", "fashion-mnist", "--model", "resnet8", "--ckpt_path", "run", "--epoch", "1",
                   "--batch", "16", "--device", "cpu", "--protocol", "frozen"])
    assert "Source Epoch: 1, Target Epoch: 1, Best Acc: " in capsys.readouterr().out
    assert read_results(tmp_path / "run/transfer_fashion-mnist_frozen.jsonl")[0]["epoch"] == 2
