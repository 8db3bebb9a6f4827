"""Wide ResNets wrn_{depth}_{k}: pre-activation basic blocks, three stages of 16k/32k/64k channels.

Depth d gives (d - 4) / 6 blocks per stage; dropout is 0 everywhere in the zoo.
"""
import torch.nn as nn
import torch.nn.functional as F

from .util import ZooModel, global_pool, he_init


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice. When the width or stride changes, the shortcut (a 1x1
    convolution) reads the activated input instead of the raw one."""

    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.convShortcut = None
        if in_planes != out_planes:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)

    def forward(self, x):
        activated = F.relu(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(F.relu(self.bn2(out)))
        shortcut = x if self.convShortcut is None else self.convShortcut(activated)
        return shortcut + out


class Stage(nn.Module):
    """A run of blocks; kept as its own module for the reference's `blockN.layer.i` keys."""

    def __init__(self, num_blocks, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[
            PreActBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
            for i in range(num_blocks)])

    def forward(self, x):
        return self.layer(x)


def batch_norm_without_update(bn, x):
    """bn(x) as the forward pass would compute it, without touching the running statistics."""
    use_batch_stats = bn.training or bn.running_mean is None
    return F.batch_norm(x, None if use_batch_stats else bn.running_mean, None if use_batch_stats else bn.running_var,
                        bn.weight, bn.bias, training=use_batch_stats, eps=bn.eps)


class WideResNet(ZooModel):
    classifier_path = "fc"

    def __init__(self, depth, widen_factor, num_classes):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a Wide ResNet needs depth = 6n + 4, got {depth}")
        blocks_per_stage = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = Stage(blocks_per_stage, widths[0], widths[1], stride=1)
        self.block2 = Stage(blocks_per_stage, widths[1], widths[2], stride=2)
        self.block3 = Stage(blocks_per_stage, widths[2], widths[3], stride=2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        he_init(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x, is_feat=False, preact=False):
        # Pre-activation net: the stem has no BN/ReLU of its own, and stage outputs are
        # raw residual sums; they go through BN-ReLU at the start of the next stage.
        stem = self.conv1(x)
        out1 = self.block1(stem)
        out2 = self.block2(out1)
        out3 = self.block3(out2)
        pooled = global_pool(F.relu(self.bn1(out3)))
        logits = self.fc(pooled)
        if not is_feat:
            return logits
        stages = (out1, out2, out3)
        if preact:
            # The pre-activation of a stage output is the BN that follows it, before its ReLU.
            next_bns = (self.block2.layer[0].bn1, self.block3.layer[0].bn1, self.bn1)
            stages = tuple(batch_norm_without_update(bn, out) for bn, out in zip(next_bns, stages))
        return [stem, *stages, pooled], logits


def _wrn(depth, widen_factor):
    def build(num_classes):
        return WideResNet(depth, widen_factor, num_classes)
    build.__name__ = build.__qualname__ = f"wrn_{depth}_{widen_factor}"
    return build


wrn_16_1, wrn_16_2, wrn_16_4, wrn_16_10 = _wrn(16, 1), _wrn(16, 2), _wrn(16, 4), _wrn(16, 10)
wrn_22_4 = _wrn(22, 4)
wrn_28_2, wrn_28_4, wrn_28_10 = _wrn(28, 2), _wrn(28, 4), _wrn(28, 10)
wrn_34_4 = _wrn(34, 4)
wrn_40_1, wrn_40_2, wrn_40_4 = _wrn(40, 1), _wrn(40, 2), _wrn(40, 4)
wrn_46_4, wrn_52_4, wrn_64_4 = _wrn(46, 4), _wrn(52, 4), _wrn(64, 4)
