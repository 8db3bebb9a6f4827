"""Real photographs: a slice of the offline CIFAR-10 JPEG archive, as an image folder."""
import csv

import pytest

import train_vanilla
from scripts.cifar10_jpg import ARCHIVE, extract

CLASSES = ("airplane", "automobile", "frog", "ship")

pytestmark = pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"the CIFAR-10 JPEG archive is not at {ARCHIVE}")


@pytest.fixture(scope="module")
def four_classes(tmp_path_factory):
    return extract(ARCHIVE, tmp_path_factory.mktemp("cifar10_jpg"), CLASSES, train_per_class=300, test_per_class=100)


def test_resnet8_learns_real_images_well_above_chance(four_classes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_vanilla.main(["--dataset", f"folder:{four_classes}", "--model", "resnet8", "--epochs", "2",
                        "--batch_size", "32", "--learning_rate", "0.1", "--num_workers", "0", "--loader", "gpu",
                        "--print_freq", "1000", "--note", "real"])
    rows = list(csv.DictReader(open(next(tmp_path.glob("save/model/*_real")) / "metrics.csv")))
    # chance is 25% on four balanced classes; two short epochs reach ~50%
    assert float(rows[-1]["test_top1"]) > 40.0
