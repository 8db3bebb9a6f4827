"""Frozen-backbone features: the pooled penultimate vector feats[-1] of every image, on the device.

The uint8 images move to the device once; each batch is normalised there (the test
transform: to [0, 1], then (x - mean) / std), so no host copy happens per batch.

amp=True runs the backbone under bf16 autocast (on any device type: CPU autocast does
bf16 too) with the model and its input in channels_last memory format; the features
come back float32 either way.

On a CPU, inference runs on a copy of the model with every BatchNorm that directly
follows a convolution folded into that convolution (`feature_extractor`).
"""
import sys
import time

import torch
import torch.nn as nn
from torch.fx.experimental.optimization import fuse as fold_conv_batchnorm

from dataset.gpu import Normalise
from helper.precision import autocast, in_channels_last
from models import build_model
from util import UserError

DEFAULT_BATCH = 1024


def as_device_uint8(images_uint8, device):
    """uint8 [N, 32, 32, 3] numpy array or tensor -> uint8 tensor on `device` (one copy at most)."""
    images = torch.as_tensor(images_uint8)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {list(images.shape)}")
    return images.to(device)


def normalised_images(images_uint8, mean, std, device):
    """All images as float32 [N, 3, H, W] on `device`, normalised as at test time."""
    nchw = as_device_uint8(images_uint8, device).permute(0, 3, 1, 2)
    return Normalise(mean, std, device)(nchw).contiguous()


class PooledFeatures(nn.Module):
    """images -> `model`'s pooled penultimate features feats[-1], as a module of its own."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model(images, is_feat=True)[0][-1]


def folds_batchnorm(device):
    """Whether folding BatchNorm into the convolutions pays on `device` (bench/feature_speed.py).

    On a CPU the folded copy runs 1.13-1.56x faster, float32 or bf16, and building it
    (0.01-0.12 s) pays after a few hundred images. On an H200 the folded forward pass
    ran 1.02-1.19x faster in float32 and 0.92-1.05x under bf16, so that over a
    CINIC-10-sized split (90,000 images) the gain barely repays the build, and over a
    CIFAR-sized test split (10,000) it does not: a GPU runs the model's own layers.
    """
    return torch.device(device).type == "cpu"


def feature_extractor(model, amp=False, fold=None):
    """images -> feats[-1] of `model` in eval mode, for inference: a copy of the model with
    each BatchNorm that directly follows a convolution folded into it when `fold` (by
    default on a CPU, `folds_batchnorm`); `model` itself is put in eval mode (and channels_last under amp)
    and otherwise untouched.

    An eval-mode BatchNorm is a fixed affine map per channel, so folding it into the
    convolution's weights and bias gives the same features to float rounding (at most
    5e-7 relative over the 40 models) and saves a memory-bound pass over every
    activation it normalised. Pre-activation BatchNorms (the WRNs') stay. Models torch.fx
    cannot trace (the VGGs branch on a tensor's size) run unfolded.
    """
    extractor = PooledFeatures(in_channels_last(model.eval(), amp))
    if not (folds_batchnorm(next(model.parameters()).device) if fold is None else fold):
        return extractor
    try:
        extractor = fold_conv_batchnorm(extractor)  # traces a deep copy
        extractor.graph.eliminate_dead_code()  # the classifier's output is never used
        extractor.recompile()
    except Exception:  # an untraceable model: same features, without the saving
        pass
    return in_channels_last(extractor.eval(), amp)


@torch.no_grad()
def extract_features(model, images_uint8, mean, std, device, batch_size=DEFAULT_BATCH, amp=None):
    """float32 [N, feat_dim] on `device`: feats[-1] of `model` in eval mode, batch by batch.

    amp: True for bf16 autocast of the backbone and channels_last memory format (model
    and input); None or False for float32. The model is moved to `device` and left in
    eval mode (and in channels_last under amp).
    """
    device = torch.device(device)
    images = as_device_uint8(images_uint8, device).permute(0, 3, 1, 2)
    normalise = Normalise(mean, std, device)
    features = feature_extractor(model.to(device), amp)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = in_channels_last(normalise(images[start:start + batch_size]), amp)
        with autocast(device, amp):
            chunks.append(features(batch).float())
    if not chunks:
        return torch.zeros(0, model.feat_dim, device=device)
    return torch.cat(chunks)


def checkpoint_features(model, path, source_classes, images_uint8, info, device, amp=False):
    """feats[-1] of the checkpoint at `path` (a `model` built for `source_classes`) on the evaluation
    images of the data set `info` describes: float32 [N, feat_dim] on the device. A UserError names
    an unreadable or mismatched file, or one whose features are not finite."""
    network = build_model(model, source_classes)
    network.load_model(path)
    features = extract_features(network, images_uint8, info.mean, info.std, device, amp=amp)
    if not torch.isfinite(features).all():
        raise UserError(f"checkpoint {path} gives non-finite features on {info.name} (did its training diverge?)")
    return features


def features_of_checkpoints(todo, failed, model, source_classes, images_uint8, info, device, amp=False):
    """(epoch, path, features, start time) of each checkpoint of `todo` (checkpoints_to_do's rows) in
    turn. One that cannot be read is named in one line on stderr, its epoch appended to `failed`,
    and the others still measured; `raise_for_failures` ends the script once all are done."""
    for _, epoch, path in todo:
        started = time.time()
        try:
            features = checkpoint_features(model, path, source_classes, images_uint8, info, device, amp)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            failed.append(epoch)
            continue
        yield epoch, path, features, started


def raise_for_failures(failed, total, verb):
    """The one line (and non-zero exit) for checkpoints that gave no result rows."""
    if failed:
        raise UserError(f"{len(failed)} of {total} checkpoint(s) could not be {verb} "
                        f"(epochs {', '.join(map(str, failed))}, see above); no result rows for them")
