"""VGG with batch norm for 32x32 inputs: five blocks of 3x3 convolutions, global pooling, one Linear.

Max-pools sit between blocks 0/1, 1/2 and 2/3; the one between blocks 3/4 is used
only for 64x64 inputs, so a 32x32 image reaches the last block at 4x4.
"""
import torch.nn as nn
import torch.nn.functional as F

from .util import ZooModel, global_pool, he_init

# Output channels of each convolution, per block.
CONFIGS = {
    "S": [[64], [128], [256], [512], [512]],
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "D": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "E": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def conv_block(widths, in_channels):
    """conv-BN-ReLU per width, without the final ReLU: the caller applies it, so the
    pre-activation is available for `preact=True` features."""
    layers = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*layers[:-1])


class VGG(ZooModel):
    classifier_path = "classifier"

    def __init__(self, config, num_classes):
        super().__init__()
        in_channels = [3] + [widths[-1] for widths in config[:-1]]
        self.block0, self.block1, self.block2, self.block3, self.block4 = (
            conv_block(widths, channels) for widths, channels in zip(config, in_channels))
        self.classifier = nn.Linear(config[-1][-1], num_classes)
        he_init(self, linear_std=0.01)

    def forward(self, x, is_feat=False, preact=False):
        pool_before_last = x.shape[2] == 64
        out0 = F.relu(self.block0(x))
        pre1 = self.block1(F.max_pool2d(out0, 2))
        out1 = F.relu(pre1)
        pre2 = self.block2(F.max_pool2d(out1, 2))
        out2 = F.relu(pre2)
        pre3 = self.block3(F.max_pool2d(out2, 2))
        out3 = F.relu(pre3)
        pre4 = self.block4(F.max_pool2d(out3, 2) if pool_before_last else out3)
        out4 = F.relu(pre4)
        pooled = global_pool(out4)
        logits = self.classifier(pooled)
        if not is_feat:
            return logits
        stages = (pre1, pre2, pre3, pre4) if preact else (out1, out2, out3, out4)
        return [out0, *stages, pooled], logits


def vgg8(num_classes):
    return VGG(CONFIGS["S"], num_classes)


def vgg11(num_classes):
    return VGG(CONFIGS["A"], num_classes)


def vgg13(num_classes):
    return VGG(CONFIGS["B"], num_classes)


def vgg16(num_classes):
    return VGG(CONFIGS["D"], num_classes)


def vgg19(num_classes):
    return VGG(CONFIGS["E"], num_classes)
