"""CIFAR ResNets: a 3x3 stem and three stages of basic blocks (resnet8 ... resnet110, x4 variants).

Depth d gives (d - 2) / 6 blocks per stage. The plain nets have 16/32/64 channels after a
16-channel stem; the x4 variants 64/128/256 after a 32-channel stem.
"""
import torch.nn as nn
import torch.nn.functional as F

from .util import ZooModel, he_init


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus shortcut. The last block of a stage also returns its
    pre-activation (the sum before the final ReLU) for `preact=True` features."""

    def __init__(self, in_planes, planes, stride=1, downsample=None, is_last=False):
        super().__init__()
        self.is_last = is_last
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        preact = out + shortcut
        out = F.relu(preact)
        return (out, preact) if self.is_last else out


class ResNet(ZooModel):
    classifier_path = "fc"

    def __init__(self, depth, widths, num_classes):
        """widths: (stem, stage 1, stage 2, stage 3) channel counts."""
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet needs depth = 6n + 2, got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_stage(widths[1], blocks_per_stage, stride=1)
        self.layer2 = self._make_stage(widths[2], blocks_per_stage, stride=2)
        self.layer3 = self._make_stage(widths[3], blocks_per_stage, stride=2)
        self.fc = nn.Linear(widths[3], num_classes)
        he_init(self)

    def _make_stage(self, planes, num_blocks, stride):
        downsample = None
        if stride != 1 or self.in_planes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.in_planes, planes, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        blocks = [BasicBlock(self.in_planes, planes, stride, downsample, is_last=num_blocks == 1)]
        self.in_planes = planes
        blocks += [BasicBlock(planes, planes, is_last=i == num_blocks - 1) for i in range(1, num_blocks)]
        return nn.Sequential(*blocks)

    def forward(self, x, is_feat=False, preact=False):
        stem = F.relu(self.bn1(self.conv1(x)))
        return self.forward_stages(stem, (self.layer1, self.layer2, self.layer3), is_feat, preact)


PLAIN_WIDTHS = (16, 16, 32, 64)
X4_WIDTHS = (32, 64, 128, 256)


def resnet8(num_classes):
    return ResNet(8, PLAIN_WIDTHS, num_classes)


def resnet14(num_classes):
    return ResNet(14, PLAIN_WIDTHS, num_classes)


def resnet20(num_classes):
    return ResNet(20, PLAIN_WIDTHS, num_classes)


def resnet32(num_classes):
    return ResNet(32, PLAIN_WIDTHS, num_classes)


def resnet44(num_classes):
    return ResNet(44, PLAIN_WIDTHS, num_classes)


def resnet56(num_classes):
    return ResNet(56, PLAIN_WIDTHS, num_classes)


def resnet110(num_classes):
    return ResNet(110, PLAIN_WIDTHS, num_classes)


def resnet8x4(num_classes):
    return ResNet(8, X4_WIDTHS, num_classes)


def resnet32x4(num_classes):
    return ResNet(32, X4_WIDTHS, num_classes)
