"""The model zoo: `model_dict[name](num_classes)` builds any of the paper's 40 architectures.

Every model answers `forward(x, is_feat=False, preact=False)` (logits, or (feats, logits)
with feats[-1] the pooled penultimate vector), `load_model(path_or_state)`,
`get_classifier()` / `set_classifier(linear)` and `feat_dim`. Names, state-dict keys
and shapes match the reference code, so its checkpoints load unchanged.
"""
import argparse

from util import UserError

from . import mobilenetv2, resnet, resnetv2, resnext, shufflenetv1, shufflenetv2, vgg, wrn
from .util import ZooModel, registered, state_dict_shapes

_CONSTRUCTORS = {
    "resnet8": resnet.resnet8,
    "resnet14": resnet.resnet14,
    "resnet20": resnet.resnet20,
    "resnet32": resnet.resnet32,
    "resnet44": resnet.resnet44,
    "resnet56": resnet.resnet56,
    "resnet110": resnet.resnet110,
    "resnet8x4": resnet.resnet8x4,
    "resnet32x4": resnet.resnet32x4,
    "ResNet18": resnetv2.ResNet18,
    "ResNet34": resnetv2.ResNet34,
    "ResNet50": resnetv2.ResNet50,
    "ResNet101": resnetv2.ResNet101,
    "ResNet152": resnetv2.ResNet152,
    "wrn_16_1": wrn.wrn_16_1,
    "wrn_16_2": wrn.wrn_16_2,
    "wrn_16_4": wrn.wrn_16_4,
    "wrn_16_10": wrn.wrn_16_10,
    "wrn_22_4": wrn.wrn_22_4,
    "wrn_28_2": wrn.wrn_28_2,
    "wrn_28_4": wrn.wrn_28_4,
    "wrn_28_10": wrn.wrn_28_10,
    "wrn_34_4": wrn.wrn_34_4,
    "wrn_40_1": wrn.wrn_40_1,
    "wrn_40_2": wrn.wrn_40_2,
    "wrn_40_4": wrn.wrn_40_4,
    "wrn_46_4": wrn.wrn_46_4,
    "wrn_52_4": wrn.wrn_52_4,
    "wrn_64_4": wrn.wrn_64_4,
    "vgg8": vgg.vgg8,
    "vgg11": vgg.vgg11,
    "vgg13": vgg.vgg13,
    "vgg16": vgg.vgg16,
    "vgg19": vgg.vgg19,
    "MobileNetV2": mobilenetv2.mobile_half,
    "ShuffleV1": shufflenetv1.ShuffleV1,
    "ShuffleV2": shufflenetv2.ShuffleV2,
    "resnext32_16x4d": resnext.resnext32_16x4d,
    "resnext32_8x8d": resnext.resnext32_8x8d,
    "resnext32_4x16d": resnext.resnext32_4x16d,
}

model_dict = {name: registered(name, constructor) for name, constructor in _CONSTRUCTORS.items()}


def unknown_model(name):
    """The one-line complaint about a model name not in model_dict, or None for a known one."""
    return None if name in model_dict else f"unknown model '{name}'; known models: {', '.join(model_dict)}"


def model_name(text):
    """argparse type of --model: a typo is refused before any file is read or written."""
    if message := unknown_model(text):
        raise argparse.ArgumentTypeError(message)
    return text


def build_model(name, num_classes):
    """model_dict[name](num_classes), with a one-line error listing the known names."""
    if message := unknown_model(name):
        raise UserError(message)
    return model_dict[name](num_classes)


__all__ = ["model_dict", "build_model", "model_name", "unknown_model", "ZooModel", "state_dict_shapes"]
