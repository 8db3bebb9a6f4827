"""CINIC-10 as image folders `{root}/CINIC-10/{train,valid,test}/<class>/*.png`.

The paper's transfer protocol trains on `train` and evaluates on `valid`, and MINE on
CINIC-10 uses `valid` too, so the evaluation split ('test') here is `valid/`.
"""
from pathlib import Path

from dataset.common import CINIC10_MEAN, CINIC10_STD, DatasetInfo
from dataset.folder import load_split_with_classes
from util import UserError

INFO = DatasetInfo("cinic10", 10, CINIC10_MEAN, CINIC10_STD)
SPLIT_DIRS = {"train": "train", "test": "valid"}
HOW_TO_GET = "download CINIC-10.tar.gz from https://github.com/BayesWatch/cinic-10 and extract it there"


def load(root, split):
    base = Path(root) / "CINIC-10"
    if not base.is_dir():
        raise UserError(f"CINIC-10 not found in {base}: {HOW_TO_GET} (giving {base}/train, valid, test)")
    for needed in sorted({"train", SPLIT_DIRS[split]}):
        if not (base / needed).is_dir():
            raise UserError(f"CINIC-10 split '{needed}' is missing: {base / needed} does not exist; {HOW_TO_GET}")
    split_dir = base / SPLIT_DIRS[split]
    images, labels = load_split_with_classes(split_dir, base / "train", Path(root) / ".cache",
                                             f"cinic10-{split_dir.name}")
    if labels.max() >= INFO.num_classes:
        raise UserError(f"{base / 'train'} has more than {INFO.num_classes} class folders; CINIC-10 has 10")
    return images, labels
