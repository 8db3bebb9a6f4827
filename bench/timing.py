"""Wall-clock timing shared by the benches: a GPU's queued work counts as part of what is timed."""
import time

import torch


def synchronize(device):
    """Wait for every kernel queued on `device` (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(work, device):
    """Seconds `work()` takes, from an idle device to its last kernel."""
    synchronize(device)
    started = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - started
