"""CIFAR ResNeXt-32 (resnext32_{cardinality}x{base_width}d), the paper's main architecture.

A 32-channel 3x3 stem, then three stages of output width 128/256/512 (strides 1/2/2),
each of (depth - 2) // 6 = 5 bottlenecks: 1x1 reduce to D channels, grouped 3x3 with
`cardinality` groups, 1x1 expand, where D = cardinality * int(base_width * width / 256).
The three variants share D and differ only in how D is split into groups.
"""
import torch.nn as nn
import torch.nn.functional as F

from .util import ZooModel

DEPTH = 32
STEM_CHANNELS = 32
STAGE_WIDTHS = (128, 256, 512)


class Bottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, stride, cardinality, base_width, is_last=False):
        super().__init__()
        self.is_last = is_last
        inner = cardinality * int(base_width * out_channels / 256)
        self.conv_reduce = nn.Conv2d(in_channels, inner, kernel_size=1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(inner)
        self.conv_conv = nn.Conv2d(inner, inner, kernel_size=3, stride=stride, padding=1, groups=cardinality,
                                   bias=False)
        self.bn = nn.BatchNorm2d(inner)
        self.conv_expand = nn.Conv2d(inner, out_channels, kernel_size=1, bias=False)
        self.bn_expand = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if in_channels != out_channels:
            self.shortcut.add_module("shortcut_conv", nn.Conv2d(in_channels, out_channels, kernel_size=1,
                                                                stride=stride, bias=False))
            self.shortcut.add_module("shortcut_bn", nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = F.relu(self.bn_reduce(self.conv_reduce(x)))
        out = F.relu(self.bn(self.conv_conv(out)))
        preact = self.bn_expand(self.conv_expand(out)) + self.shortcut(x)
        out = F.relu(preact)
        return (out, preact) if self.is_last else out


class ResNeXt(ZooModel):
    classifier_path = "classifier"

    def __init__(self, cardinality, base_width, num_classes):
        super().__init__()
        blocks_per_stage = (DEPTH - 2) // 6
        self.conv_1_3x3 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=3, padding=1, bias=False)
        self.bn_1 = nn.BatchNorm2d(STEM_CHANNELS)
        in_channels = (STEM_CHANNELS,) + STAGE_WIDTHS[:-1]
        strides = (1, 2, 2)
        self.stage_1, self.stage_2, self.stage_3 = (
            self._make_stage(f"stage_{number}", entering, width, stride, blocks_per_stage, cardinality, base_width)
            for number, entering, width, stride in zip((1, 2, 3), in_channels, STAGE_WIDTHS, strides))
        self.classifier = nn.Linear(STAGE_WIDTHS[-1], num_classes)
        self._init_weights()

    @staticmethod
    def _make_stage(name, in_channels, width, stride, num_blocks, cardinality, base_width):
        # Named children (stage_1_bottleneck_0, ...) give the reference's state-dict keys.
        stage = nn.Sequential()
        for i in range(num_blocks):
            stage.add_module(f"{name}_bottleneck_{i}", Bottleneck(
                in_channels if i == 0 else width, width, stride if i == 0 else 1, cardinality, base_width,
                is_last=i == num_blocks - 1))
        return stage

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.kaiming_normal_(self.classifier.weight, nonlinearity="relu")
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x, is_feat=False, preact=False):
        stem = F.relu(self.bn_1(self.conv_1_3x3(x)))
        return self.forward_stages(stem, (self.stage_1, self.stage_2, self.stage_3), is_feat, preact)


def resnext32_16x4d(num_classes):
    return ResNeXt(cardinality=16, base_width=4, num_classes=num_classes)


def resnext32_8x8d(num_classes):
    return ResNeXt(cardinality=8, base_width=8, num_classes=num_classes)


def resnext32_4x16d(num_classes):
    return ResNeXt(cardinality=4, base_width=16, num_classes=num_classes)
