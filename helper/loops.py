"""Training and evaluation loops shared by train_vanilla.py and train_ctc.py.

A loop knows nothing about the method: it is handed a `loss_fn(batch) -> StepOutput`
that computes the loss of one batch (cross-entropy, or CE + the CTC terms).

Running sums live on the device and are read back only every `print_freq` steps and at
the end of the epoch, so a GPU step never waits for the host (the reference synchronised
after every step to update its meters).
"""
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm


@dataclass
class StepOutput:
    loss: torch.Tensor               # scalar the optimizer minimises
    logits: torch.Tensor             # class scores, for top-1/top-5
    terms: dict = field(default_factory=dict)  # named scalar parts of the loss, logged separately


class NonFiniteLoss(RuntimeError):
    """The loss became NaN/inf; carries where, so the script can say it in one line."""

    def __init__(self, epoch, step):
        super().__init__(f"loss became non-finite at epoch {epoch}, step {step}")
        self.epoch, self.step = epoch, step


class EpochMeters:
    """Sample-weighted sums of loss, correct top-1/top-5 and loss terms, kept on the device."""

    def __init__(self, device):
        self.device = device
        self.sums = {}
        self.count = 0
        self.first_bad_step = torch.full((), -1, dtype=torch.long, device=device)

    def _add(self, name, value):
        value = value.detach().float()
        self.sums[name] = self.sums[name] + value if name in self.sums else value

    def update(self, step, output, target):
        batch = target.shape[0]
        self._add("loss", output.loss * batch)
        top5 = output.logits.topk(min(5, output.logits.shape[1]), dim=1).indices.eq(target[:, None])
        self._add("top1", top5[:, 0].sum())
        self._add("top5", top5.any(dim=1).sum())
        for name, value in output.terms.items():
            self._add(name, value * batch)
        bad = ~torch.isfinite(output.loss.detach())
        self.first_bad_step = torch.where(bad & (self.first_bad_step < 0), step, self.first_bad_step)
        self.count += batch

    def averages(self):
        """Host copy of the averages (one synchronisation); accuracies in percent."""
        values = {name: total.item() / self.count for name, total in self.sums.items()}
        values["top1"] *= 100.0
        values["top5"] *= 100.0
        return values

    def raise_if_diverged(self, epoch):
        bad_step = int(self.first_bad_step.item())
        if bad_step >= 0:
            raise NonFiniteLoss(epoch, bad_step + 1)


def to_device(batch, device):
    return tuple(t.to(device, non_blocking=True) for t in batch)


def _progress(loader, desc):
    # disable=None: a bar on a terminal, silence in logs and pipes.
    return tqdm(loader, desc=desc, leave=False, disable=None, dynamic_ncols=True, file=sys.stderr)


def _say(text):
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


def train_epoch(epoch, loader, model, loss_fn, optimizer, device, print_freq=100):
    """One pass over `loader`; returns averaged loss, top1, top5 and loss terms."""
    model.train()
    meters = EpochMeters(device)
    batches = len(loader)
    start = time.time()
    for step, batch in enumerate(_progress(loader, f"epoch {epoch}")):
        batch = to_device(batch, device)
        output = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        meters.update(step, output, batch[1])
        if (step + 1) % print_freq == 0:
            meters.raise_if_diverged(epoch)
            avg = meters.averages()
            _say(f"Epoch: [{epoch}][{step + 1}/{batches}]\t"
                 f"Time {(time.time() - start) / (step + 1):.3f}\t"
                 f"Loss {avg['loss']:.4f}\tAcc@1 {avg['top1']:.3f}\tAcc@5 {avg['top5']:.3f}")
    meters.raise_if_diverged(epoch)
    avg = meters.averages()
    _say(f" * Acc@1 {avg['top1']:.3f} Acc@5 {avg['top5']:.3f}")
    return avg


@torch.no_grad()
def validate(loader, model, device, print_freq=100):
    """Eval-mode cross-entropy and top-1/top-5 on `loader` (never shuffled, nothing dropped)."""
    model.eval()
    meters = EpochMeters(device)
    batches = len(loader)
    for step, batch in enumerate(_progress(loader, "test")):
        images, target = to_device(batch[:2], device)
        logits = model(images)
        meters.update(step, StepOutput(F.cross_entropy(logits, target), logits), target)
        if (step + 1) % print_freq == 0:
            avg = meters.averages()
            _say(f"Test: [{step + 1}/{batches}]\tLoss {avg['loss']:.4f}\t"
                 f"Acc@1 {avg['top1']:.3f}\tAcc@5 {avg['top5']:.3f}")
    avg = meters.averages()
    _say(f" * Acc@1 {avg['top1']:.3f} Acc@5 {avg['top5']:.3f}")
    return avg
