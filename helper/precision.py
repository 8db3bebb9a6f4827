"""Numeric precision and memory layout, one home: TF32 and cuDNN settings, autocast,
channels_last, and the check that bf16 is really available.

Training takes them through `Precision` (--amp none/bf16/fp16, --channels_last);
transfer.py and mine.py have one switch, --amp, meaning bf16 autocast with channels_last
for the backbone (`autocast(device, amp)`, `in_channels_last(x, amp)`).
"""
import contextlib

import torch

from util import UserError, pick_device

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def configure_backends(device, cudnn_benchmark=True, tf32=True):
    """cuDNN autotuning and TF32 matmuls/convolutions on CUDA.

    TF32 is on by default because the paper's numbers were made with PyTorch 1.10 on
    Ampere GPUs, where it was the default for convolutions and matrix products.
    """
    if torch.device(device).type != "cuda":
        return
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def measurement_device(flag, amp):
    """The device a per-checkpoint script (transfer.py, mine.py, geometry.py) runs on, checked to do
    bf16 if `amp` asks for it, with its numeric backends configured."""
    device = pick_device(flag)
    check_bf16(device, amp)
    configure_backends(device)
    return device


def check_bf16(device, wanted):
    """One clear line instead of a silent float32 run: CUDA autocast falls back to float32
    with only a warning on GPUs without bf16 (before Ampere), and results would say bf16."""
    device = torch.device(device)
    if wanted and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"bf16 was asked for, but {torch.cuda.get_device_name(device)} has no bf16 support; "
                        f"run without --amp (or, for training, with --amp fp16)")


def autocast(device, amp):
    """bf16 autocast on `device`'s type when `amp` (CPU autocast does bf16 too), a no-op otherwise."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bool(amp))


def in_channels_last(model_or_images, wanted):
    """The model (in place) or a batch in channels_last memory format when `wanted`, unchanged otherwise.

    Tensor-core convolutions on a GPU run in NHWC; an NCHW model and input would be
    transposed around every convolution, which eats much of what bf16 saves.
    """
    if not wanted:
        return model_or_images
    if isinstance(model_or_images, torch.Tensor):
        return model_or_images.contiguous(memory_format=torch.channels_last)
    return model_or_images.to(memory_format=torch.channels_last)


class Precision:
    """Autocast dtype and memory format of a training run (--amp, --channels_last)."""

    def __init__(self, device, amp="none", channels_last=False):
        self.device = torch.device(device)
        check_bf16(self.device, amp == "bf16")
        self.dtype = AMP_DTYPES[amp]
        self.channels_last = channels_last

    def autocast(self, cache_enabled=True):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=cache_enabled)

    def prepare(self, batch):
        """Move a batch to the device; images in channels_last when asked for."""
        batch = [t.to(self.device, non_blocking=True) for t in batch]
        batch[0] = in_channels_last(batch[0], self.channels_last)
        return tuple(batch)

    def prepare_model(self, model):
        return in_channels_last(model, self.channels_last)
