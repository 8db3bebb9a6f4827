"""ShuffleNet v2 at width 1 for 32x32 inputs (ShuffleV2): stages of 116/232/464 channels, 1024 at the end.

Each stage opens with a down-sampling unit (two strided branches, concatenated) followed
by units that transform half of the channels and pass the other half through.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .util import ZooModel

STEM_CHANNELS = 24


def channel_shuffle(x, groups=2):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SplitUnit(nn.Module):
    """Keeps the first half of the channels; 1x1, depthwise 3x3, 1x1 on the second half."""

    def __init__(self, channels, is_last=False):
        super().__init__()
        self.is_last = is_last
        half = channels // 2
        self.conv1 = nn.Conv2d(half, half, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, kernel_size=3, padding=1, groups=half, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, half, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)

    def forward(self, x):
        kept, transformed = x.chunk(2, dim=1)
        out = F.relu(self.bn1(self.conv1(transformed)))
        out = self.bn2(self.conv2(out))
        branch_preact = self.bn3(self.conv3(out))
        out = channel_shuffle(torch.cat([kept, F.relu(branch_preact)], 1))
        if not self.is_last:
            return out
        # As in the reference, the pre-activation is returned unshuffled.
        return out, torch.cat([kept, branch_preact], 1)


class DownUnit(nn.Module):
    """Two stride-2 branches of out_channels / 2 each: depthwise-then-1x1, and 1x1-depthwise-1x1."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        half = out_channels // 2
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=2, padding=1, groups=in_channels,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, half, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(in_channels, half, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)
        self.conv4 = nn.Conv2d(half, half, kernel_size=3, stride=2, padding=1, groups=half, bias=False)
        self.bn4 = nn.BatchNorm2d(half)
        self.conv5 = nn.Conv2d(half, half, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(half)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1))


class ShuffleNetV2(ZooModel):
    classifier_path = "linear"

    def __init__(self, stage_channels, blocks_per_stage, last_channels, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        in_channels = (STEM_CHANNELS,) + tuple(stage_channels[:-1])
        self.layer1, self.layer2, self.layer3 = (
            nn.Sequential(DownUnit(entering, channels),
                          *[SplitUnit(channels, is_last=i == count - 1) for i in range(count)])
            for entering, channels, count in zip(in_channels, stage_channels, blocks_per_stage))
        self.conv2 = nn.Conv2d(stage_channels[-1], last_channels, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(last_channels)
        self.linear = nn.Linear(last_channels, num_classes)

    def forward(self, x, is_feat=False, preact=False):
        stem = F.relu(self.bn1(self.conv1(x)))
        return self.forward_stages(stem, (self.layer1, self.layer2, self.layer3), is_feat, preact,
                                   head=lambda out: F.relu(self.bn2(self.conv2(out))))


def ShuffleV2(num_classes):
    return ShuffleNetV2((116, 232, 464), (3, 7, 3), last_channels=1024, num_classes=num_classes)
