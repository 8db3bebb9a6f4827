"""ImageNet-style ResNets (ResNet18 ... ResNet152) adapted to 32x32 inputs.

The 7x7 stride-2 stem and max-pool are replaced by one 3x3 stride-1 convolution;
four stages of 64/128/256/512 planes (x4 channels with bottlenecks), strides 1/2/2/2.
"""
import torch.nn as nn
import torch.nn.functional as F

from .util import ZooModel, he_init


def projection(in_planes, out_planes, stride):
    """Shortcut: identity when shapes agree, else a strided 1x1 convolution + BN."""
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, is_last=False):
        super().__init__()
        self.is_last = is_last
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = projection(in_planes, planes, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        preact = self.bn2(self.conv2(out)) + self.shortcut(x)
        out = F.relu(preact)
        return (out, preact) if self.is_last else out


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1, is_last=False):
        super().__init__()
        self.is_last = is_last
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = projection(in_planes, planes * self.expansion, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        preact = self.bn3(self.conv3(out)) + self.shortcut(x)
        out = F.relu(preact)
        return (out, preact) if self.is_last else out


class ResNet(ZooModel):
    classifier_path = "linear"

    def __init__(self, block, blocks_per_stage, num_classes):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_stage(block, 64, blocks_per_stage[0], stride=1)
        self.layer2 = self._make_stage(block, 128, blocks_per_stage[1], stride=2)
        self.layer3 = self._make_stage(block, 256, blocks_per_stage[2], stride=2)
        self.layer4 = self._make_stage(block, 512, blocks_per_stage[3], stride=2)
        self.linear = nn.Linear(512 * block.expansion, num_classes)
        he_init(self)

    def _make_stage(self, block, planes, num_blocks, stride):
        blocks = []
        for i in range(num_blocks):
            blocks.append(block(self.in_planes, planes, stride if i == 0 else 1, is_last=i == num_blocks - 1))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*blocks)

    def forward(self, x, is_feat=False, preact=False):
        stem = F.relu(self.bn1(self.conv1(x)))
        return self.forward_stages(stem, (self.layer1, self.layer2, self.layer3, self.layer4), is_feat, preact)


def ResNet18(num_classes):
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


def ResNet34(num_classes):
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes)


def ResNet50(num_classes):
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)


def ResNet101(num_classes):
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes)


def ResNet152(num_classes):
    return ResNet(Bottleneck, (3, 8, 36, 3), num_classes)
