"""MobileNetV2 at width 0.5 (expansion 6) for 32x32 inputs, as the distillation benchmarks use it.

The stem convolution has stride 2, so a 32x32 image leaves the last block at 2x2.
Features are taken at the reference's block boundaries (6 entries); there is no
pre-activation variant, so `preact` is accepted and ignored.
"""
import torch.nn as nn

from .util import ZooModel, global_pool, he_init

# (expansion, output channels at width 1, blocks, stride of the first block)
STAGES = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
WIDTH = 0.5
LAST_CHANNELS = 1280


def conv_bn_relu(in_channels, out_channels, kernel_size, stride=1):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise, 1x1 linear projection; residual when shapes agree."""

    def __init__(self, in_channels, out_channels, stride, expansion):
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(ZooModel):
    classifier_path = "classifier.0"

    def __init__(self, num_classes):
        super().__init__()
        in_channels = int(32 * WIDTH)
        self.conv1 = conv_bn_relu(3, in_channels, 3, stride=2)
        self.blocks = nn.ModuleList()
        for expansion, channels, num_blocks, stride in STAGES:
            out_channels = int(channels * WIDTH)
            stage = []
            for i in range(num_blocks):
                stage.append(InvertedResidual(in_channels, out_channels, stride if i == 0 else 1, expansion))
                in_channels = out_channels
            self.blocks.append(nn.Sequential(*stage))
        self.conv2 = conv_bn_relu(in_channels, LAST_CHANNELS, 1)
        # A one-layer Sequential only to keep the reference's `classifier.0.*` keys.
        self.classifier = nn.Sequential(nn.Linear(LAST_CHANNELS, num_classes))
        he_init(self, linear_std=0.01)

    def forward(self, x, is_feat=False, preact=False):
        stem = self.conv1(x)
        out1 = self.blocks[1](self.blocks[0](stem))
        out2 = self.blocks[2](out1)
        out3 = self.blocks[4](self.blocks[3](out2))
        out4 = self.blocks[6](self.blocks[5](out3))
        pooled = global_pool(self.conv2(out4))
        logits = self.classifier(pooled)
        return ([stem, out1, out2, out3, out4, pooled], logits) if is_feat else logits


def mobile_half(num_classes):
    return MobileNetV2(num_classes)
