"""What every model of the zoo shares: checkpoint loading, classifier access, naming.

Checkpoints written by the paper's public code wrap the model in DataParallel
(keys start with `module.`); ours may come from a compiled model (`_orig_mod.`).
Both load here, and a checkpoint of another architecture or class count is refused
with one line that names the disagreeing keys instead of a long strict-load traceback.
"""
import os
from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

import util

# Prefixes added by wrappers around the model, never by the model itself.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
KEYS_SHOWN = 3


class ZooModel(nn.Module):
    """Base of every model: `load_model`, `get_classifier`/`set_classifier`, `feat_dim`.

    Subclasses name their final nn.Linear in `classifier_path` (a dotted module path),
    keeping the reference's attribute name so that state-dict keys stay compatible.
    """

    classifier_path = "fc"

    def __init__(self):
        super().__init__()
        # Named in error messages; the registry replaces it with the model_dict name.
        self.arch = type(self).__name__

    @property
    def feat_dim(self):
        """Length of feats[-1], the pooled vector the classifier reads."""
        return self.get_classifier().in_features

    def get_classifier(self):
        return self.get_submodule(self.classifier_path)

    def set_classifier(self, linear):
        """Replace the final layer, e.g. by a fresh Linear to the target classes of a probe."""
        if not isinstance(linear, nn.Linear) or linear.in_features != self.feat_dim:
            raise ValueError(f"{self.arch} needs an nn.Linear with in_features={self.feat_dim}, got {linear!r}")
        parent_path, _, name = self.classifier_path.rpartition(".")
        setattr(self.get_submodule(parent_path), name, linear)

    def forward_stages(self, stem, stages, is_feat, preact, head=None):
        """The forward pass after the stem, for families whose stages end in a block that
        returns (output, pre-activation): run the stages, pool (after `head`, e.g. a last
        1x1 convolution, when given), classify.

        Returns logits, or (feats, logits) with feats = [stem, each stage's output (its
        pre-activation with `preact`), pooled vector].
        """
        outputs, preacts, out = [], [], stem
        for stage in stages:
            out, pre = stage(out)
            outputs.append(out)
            preacts.append(pre)
        pooled = global_pool(head(out) if head is not None else out)
        logits = self.get_classifier()(pooled)
        if not is_feat:
            return logits
        return [stem, *(preacts if preact else outputs), pooled], logits

    def load_model(self, source):
        """Load weights from a checkpoint path, a checkpoint dict holding `model`, or a state dict.

        Raises util.UserError naming the file and the first disagreeing keys when the
        weights do not fit this architecture. Returns the model.
        """
        if isinstance(source, (str, os.PathLike)):
            label = f"checkpoint {source}"
            source = util.load_checkpoint(source)
        else:
            label = "the given state dict"
        state = strip_wrapper_prefixes(state_dict_of(source, label))
        check_fits(self, state, label)
        self.load_state_dict(state)
        return self


def state_dict_of(checkpoint, label):
    """The state dict inside a loaded checkpoint (or the checkpoint itself when it is one)."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("model"), Mapping):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, Mapping) or not checkpoint or \
            not all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        found = sorted(map(str, checkpoint))[:KEYS_SHOWN * 2] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise util.UserError(f"{label} holds neither a state dict nor a dict with a 'model' state dict (found {found})")
    return checkpoint


def strip_wrapper_prefixes(state):
    def strip(key):
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        return key
    return {strip(key): value for key, value in state.items()}


def check_fits(model, state, label):
    """Raise util.UserError unless `state` has exactly the model's keys and shapes."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    given = {key: tuple(value.shape) for key, value in state.items()}
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    mismatched = [f"{key} {list(given[key])} (model {list(expected[key])})"
                  for key in expected if key in given and given[key] != expected[key]]
    problems = [f"{what} {_first_few(keys)}" for what, keys in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)) if keys]
    if problems:
        raise util.UserError(f"{label} does not fit {model.arch}: " + "; ".join(problems)
                             + " (was it trained with another --model or number of classes?)")


def _first_few(items):
    more = f" ... and {len(items) - KEYS_SHOWN} more" if len(items) > KEYS_SHOWN else ""
    return ", ".join(items[:KEYS_SHOWN]) + more


def state_dict_shapes(model):
    """[[key, shape], ...] in state-dict order: the format of reference_state_dict_keys.json."""
    return [[key, list(value.shape)] for key, value in model.state_dict().items()]


def registered(name, constructor):
    """`constructor(num_classes)` whose models carry `name` as their `arch`."""
    def build(num_classes):
        model = constructor(num_classes)
        model.arch = name
        return model
    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"Build {name} with a `num_classes`-way classifier."
    return build


def global_pool(x):
    """Average over all positions: [N, C, H, W] -> [N, C].

    The reference pools with a fixed window (8 or 4) that covers the whole map of a
    32x32 input; averaging everything gives the same vector there and still works
    for other input sizes.
    """
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


def he_init(model, linear_std=None):
    """Kaiming-normal (fan_out) convolutions, unit BatchNorm, zero conv biases.

    `linear_std` set: Linear weights ~ N(0, linear_std) with zero bias (VGG and
    MobileNetV2 in the reference); otherwise Linear layers keep PyTorch's default.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and linear_std is not None:
            nn.init.normal_(module.weight, 0, linear_std)
            nn.init.zeros_(module.bias)
