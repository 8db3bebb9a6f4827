"""ShuffleNet v1 with 3 groups for 32x32 inputs (ShuffleV1): stages of 240/480/960 channels.

The stem is a 1x1 convolution to 24 channels; the first unit of each stage halves the
resolution and concatenates an average-pooled copy of its input.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .util import ZooModel

STEM_CHANNELS = 24


def channel_shuffle(x, groups):
    """Interleave the channels of `groups` groups so the next grouped conv mixes them."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, in_planes, out_planes, stride, groups, is_last=False):
        super().__init__()
        self.is_last = is_last
        self.stride = stride
        mid_planes = out_planes // 4
        # The stem has too few channels to split into groups.
        self.first_groups = 1 if in_planes == STEM_CHANNELS else groups
        self.conv1 = nn.Conv2d(in_planes, mid_planes, kernel_size=1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.conv2 = nn.Conv2d(mid_planes, mid_planes, kernel_size=3, stride=stride, padding=1,
                               groups=mid_planes, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, out_planes, kernel_size=1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.first_groups)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            preact = torch.cat([out, F.avg_pool2d(x, 3, stride=2, padding=1)], 1)
        else:
            preact = out + x
        out = F.relu(preact)
        return (out, preact) if self.is_last else out


class ShuffleNet(ZooModel):
    classifier_path = "linear"

    def __init__(self, stage_planes, blocks_per_stage, groups, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.in_planes = STEM_CHANNELS
        self.layer1 = self._make_stage(stage_planes[0], blocks_per_stage[0], groups)
        self.layer2 = self._make_stage(stage_planes[1], blocks_per_stage[1], groups)
        self.layer3 = self._make_stage(stage_planes[2], blocks_per_stage[2], groups)
        self.linear = nn.Linear(stage_planes[2], num_classes)

    def _make_stage(self, out_planes, num_blocks, groups):
        units = []
        for i in range(num_blocks):
            # The first unit concatenates its (pooled) input, so its own branch is narrower.
            branch_planes = out_planes - self.in_planes if i == 0 else out_planes
            units.append(ShuffleUnit(self.in_planes, branch_planes, stride=2 if i == 0 else 1, groups=groups,
                                     is_last=i == num_blocks - 1))
            self.in_planes = out_planes
        return nn.Sequential(*units)

    def forward(self, x, is_feat=False, preact=False):
        stem = F.relu(self.bn1(self.conv1(x)))
        return self.forward_stages(stem, (self.layer1, self.layer2, self.layer3), is_feat, preact)


def ShuffleV1(num_classes):
    return ShuffleNet((240, 480, 960), (4, 8, 4), groups=3, num_classes=num_classes)
