"""Training methods and the loops that run them, shared by train_vanilla.py and train_ctc.py.

A method (CrossEntropyMethod, CTCMethod) owns its loss, its learning-rate schedule and
weight decay per epoch, and its state; the loops know nothing about it beyond
`loss(batch) -> StepOutput` (cross-entropy, or CE + the CTC terms).

Running sums live on the device and are read back only every `print_freq` steps and at
the end of the epoch, so a GPU step never waits for the host (the reference synchronised
after every step to update its meters).
"""
import copy
import math
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from helper import distributed
from helper.ctc import CTCLoss, InstanceLoss
from util import UserError


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

    def averages(self, across_processes=False):
        """Host copy of the averages (one synchronisation); accuracies in percent.

        across_processes: in a distributed run each process saw its own share of the
        data; sum every process's totals first, so the averages cover the whole epoch.
        """
        names = list(self.sums)
        totals = torch.stack([self.sums[name].double() for name in names]
                             + [torch.tensor(float(self.count), dtype=torch.float64, device=self.device)])
        if across_processes and distributed.active():
            torch.distributed.all_reduce(totals)
        *totals, count = totals.tolist()
        values = {name: total / count for name, total in zip(names, totals)}
        values["top1"] *= 100.0
        values["top5"] *= 100.0
        return values

    def raise_if_diverged(self, epoch):
        """NonFiniteLoss if a loss so far was NaN/inf. In a distributed run every process
        calls this at the same step and all of them raise together, naming the earliest
        bad step of any, so that none is left waiting in the next collective."""
        bad_step = self.first_bad_step
        if distributed.active():
            never = torch.iinfo(torch.long).max
            bad_step = torch.where(bad_step < 0, never, bad_step)
            torch.distributed.all_reduce(bad_step, op=torch.distributed.ReduceOp.MIN)
            bad_step = torch.where(bad_step == never, -1, bad_step)
        bad_step = int(bad_step.item())
        if bad_step >= 0:
            raise NonFiniteLoss(epoch, bad_step + 1)


def _progress(loader, desc):
    # disable=None: a bar on a terminal, silence in logs and pipes.
    return tqdm(loader, desc=desc, leave=False, disable=None, dynamic_ncols=True, file=sys.stderr)


def _say(text):
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


def train_epoch(epoch, loader, model, step, precision, print_freq=100):
    """One pass over `loader` through `step` (helper.steps); returns averaged loss, top1, top5, terms."""
    model.train()
    meters = EpochMeters(precision.device)
    batches = len(loader)
    start = time.time()
    for number, batch in enumerate(_progress(loader, f"epoch {epoch}")):
        batch = precision.prepare(batch)
        output = step(batch)
        meters.update(number, output, batch[1])
        if (number + 1) % print_freq == 0:
            meters.raise_if_diverged(epoch)
            avg = meters.averages()
            _say(f"Epoch: [{epoch}][{number + 1}/{batches}]\t"
                 f"Time {(time.time() - start) / (number + 1):.3f}\t"
                 f"Loss {avg['loss']:.4f}\tAcc@1 {avg['top1']:.3f}\tAcc@5 {avg['top5']:.3f}")
    meters.raise_if_diverged(epoch)
    avg = meters.averages(across_processes=True)  # validation needs no such step: every process tests on all of it
    _say(f" * Acc@1 {avg['top1']:.3f} Acc@5 {avg['top5']:.3f}")
    return avg


@torch.no_grad()
def validate(loader, model, precision, print_freq=100):
    """Eval-mode cross-entropy and top-1/top-5 on `loader` (never shuffled, nothing dropped)."""
    model.eval()
    meters = EpochMeters(precision.device)
    batches = len(loader)
    for number, batch in enumerate(_progress(loader, "test")):
        images, target = precision.prepare(batch[:2])
        with precision.autocast():
            logits = model(images)
        meters.update(number, StepOutput(F.cross_entropy(logits.float(), target), logits), target)
        if (number + 1) % print_freq == 0:
            avg = meters.averages()
            _say(f"Test: [{number + 1}/{batches}]\tLoss {avg['loss']:.4f}\t"
                 f"Acc@1 {avg['top1']:.3f}\tAcc@5 {avg['top5']:.3f}")
    avg = meters.averages()
    _say(f" * Acc@1 {avg['top1']:.3f} Acc@5 {avg['top5']:.3f}")
    return avg


# --------------------------------------------------------------------------- LR schedules

def vanilla_lr(epoch, base_lr, epochs, min_lr_scale=0.1, warmup_epochs=5):
    """SPEC 5: linear warm-up over the first 5 epochs, then cosine down to min_lr_scale*base."""
    if epoch <= warmup_epochs:
        return base_lr * epoch / warmup_epochs
    cosine = 0.5 * (1 + math.cos(math.pi * epoch / (epochs + 1)))
    return base_lr * (min_lr_scale + (1 - min_lr_scale) * cosine)


def ctc_lr(epoch, base_lr, epochs, stage_two_epoch, stage_two_decay_rate):
    """SPEC 6: one cosine per stage, no warm-up; stage 2 restarts at base*decay_rate."""
    if epoch <= stage_two_epoch:
        return base_lr * 0.5 * (1 + math.cos(math.pi * epoch / (stage_two_epoch + 1)))
    epoch_in_stage = epoch - stage_two_epoch
    stage_len = epochs - stage_two_epoch
    return base_lr * stage_two_decay_rate * 0.5 * (1 + math.cos(math.pi * epoch_in_stage / (stage_len + 1)))


# --------------------------------------------------------------------------- whole runs

class CrossEntropyMethod:
    """Plain cross-entropy training (SPEC 5); the interface every training method follows.

    fit() asks a method, per epoch, for the learning rate, the weight decay and the
    training loader, then for the loss of each batch; after the epoch it calls
    end_epoch(), and it saves state_dict() in the resumable checkpoint. `stage` names the
    loss currently computed (a captured CUDA graph is recorded again when it changes).
    """

    stage = 1

    def __init__(self, model, train_loader, base_lr, weight_decay, epochs, min_lr_scale):
        self.model, self.train_loader = model, train_loader
        self.base_lr, self.base_wd = base_lr, weight_decay
        self.epochs, self.min_lr_scale = epochs, min_lr_scale

    def lr(self, epoch):
        return vanilla_lr(epoch, self.base_lr, self.epochs, self.min_lr_scale)

    def weight_decay(self, epoch):
        return self.base_wd

    def begin_epoch(self, epoch):
        return self.train_loader

    def loss(self, batch):
        images, target = batch[:2]
        logits = self.model(images)
        return StepOutput(F.cross_entropy(logits, target), logits)

    def end_epoch(self, epoch):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def fit(run, method, model, step, test_loader, epochs, save_freq, print_freq):
    """Train epochs run.start_epoch..epochs: validate, log and checkpoint after each one.

    `run` is the helper.run.TrainingRun (a resumed run is restored from it first); `model`
    is the bare network (what is saved and validated); the method may train it through a
    wrapper such as DistributedDataParallel.
    """
    precision = step.precision
    run.restore(model, step, method)
    for epoch in range(run.start_epoch, epochs + 1):
        lr = method.lr(epoch)
        loader = method.begin_epoch(epoch)
        step.begin_epoch(method.loss, lr, method.weight_decay(epoch), method.stage)
        print("==> training...")
        started = time.time()
        try:
            train = train_epoch(epoch, loader, model, step, precision, print_freq)
        except NonFiniteLoss as err:
            kept = (f"the last good checkpoint is {run.last_path}" if run.last_path.is_file()
                    else "no checkpoint had been written yet")
            raise UserError(f"{err}; training stopped, {kept}") from None
        print(f"epoch {epoch}, total time {time.time() - started:.2f}")
        method.end_epoch(epoch)
        test = validate(test_loader, model, precision, print_freq)
        run.log_epoch(epoch, {"lr": lr, **{f"train_{k}": v for k, v in train.items()},
                              **{f"test_{k}": v for k, v in test.items()},
                              "seconds": round(time.time() - started, 3)})
        run.save(epoch, model, test["top1"], save_freq, step, method)
    print(f"best accuracy: {run.best_acc:.3f}")
    return run.best_acc


class CTCMethod:
    """Contrastive Temporal Coding (SPEC 6): CE + alpha * instance loss for epochs 1..S,
    then CE + beta * NCE against a frozen copy of the model taken at the end of epoch S.

    `make_loader(variant)` builds the training loader: 'instance' batches (img, target,
    index) in stage 1, 'ctc' batches with contrast indices in stage 2 -- stage 1 has no
    use for 16k negatives per sample, so they are only drawn once they are needed.
    `loaders` may hold loaders already built. `distribute(module, sync_buffers)`
    wraps what every process trains (TrainingSession.distribute: DistributedDataParallel
    under torchrun); the memories in the losses' buffers are kept equal by the losses
    themselves (helper.ctc), not broadcast. The interface is CrossEntropyMethod's.
    """

    def __init__(self, model, make_loader, n_data, opts, precision, loaders=None, distribute=None):
        self.model, self.make_loader, self.opts, self.precision = model, make_loader, opts, precision
        self.n_data = n_data
        device = precision.device
        self.instance_loss = InstanceLoss(model.feat_dim, n_data, opts.instance_dim,
                                          opts.instance_t, opts.instance_m).to(device)
        self.ctc_loss = CTCLoss(model.feat_dim, model.feat_dim, n_data, opts.nce_k, opts.contrast_feat_dim,
                                opts.nce_t, opts.nce_m).to(device)
        if not opts.train_projector:
            # The reference leaves the stage-1 projector out of its optimizer: it keeps its
            # random initialisation while gradients still flow through it to the backbone.
            self.instance_loss.projector.requires_grad_(False)
        self._wrap_trained(distribute or (lambda module, sync_buffers=True: module))
        self.info_bank = None
        self.loaders = dict(loaders or {})
        self.stage = 1

    def _wrap_trained(self, distribute):
        """The modules the loss calls: the model and the heads with trainable weights, wrapped."""
        self.trained_model = distribute(self.model)
        self.trained_ctc_loss = distribute(self.ctc_loss, sync_buffers=False)
        self.trained_instance_loss = self.instance_loss
        if any(p.requires_grad for p in self.instance_loss.parameters()):
            self.trained_instance_loss = distribute(self.instance_loss, sync_buffers=False)

    def trainable_parameters(self):
        """The model, both stage-2 heads and (with --train_projector) the stage-1 projector."""
        heads = [p for p in self.instance_loss.parameters() if p.requires_grad]
        return list(self.model.parameters()) + list(self.ctc_loss.parameters()) + heads

    def lr(self, epoch):
        o = self.opts
        return ctc_lr(epoch, o.learning_rate, o.epochs, o.stage_two_epoch, o.stage_two_decay_rate)

    def weight_decay(self, epoch):
        coef = self.opts.weight_decay_coef if epoch <= self.opts.stage_two_epoch else 1.0
        return self.opts.weight_decay * coef

    def begin_epoch(self, epoch):
        self.stage = 1 if epoch <= self.opts.stage_two_epoch else 2
        return self._loader("instance" if self.stage == 1 else "ctc")

    def _loader(self, variant):
        if variant not in self.loaders:
            self.loaders[variant] = self.make_loader(variant)
        return self.loaders[variant]

    def loss(self, batch):
        images, target, index = batch[:3]
        feats, logits = self.trained_model(images, is_feat=True)
        ce = F.cross_entropy(logits, target)
        if self.stage == 1:
            instance = self.trained_instance_loss(feats[-1], index)
            return StepOutput(ce + self.opts.alpha * instance, logits, {"ce": ce, "instance": instance})
        with torch.no_grad():
            infobank_feature = self.info_bank(images, is_feat=True)[0][-1]
        nce = self.trained_ctc_loss(feats[-1], infobank_feature, index, batch[3])
        return StepOutput(ce + self.opts.beta * nce, logits, {"ce": ce, "nce": nce})

    def end_epoch(self, epoch):
        if epoch != self.opts.stage_two_epoch:
            return
        state = self.model.state_dict()
        # Under torchrun each process has moved its BatchNorm statistics with its own last
        # batch since DistributedDataParallel last broadcast them; the info bank must be
        # one model everywhere: the first process's, the one its checkpoint holds.
        distributed.copy_from_first(list(state.values()))
        self.info_bank = self._frozen_copy(state)
        if self.opts.update_memory_bank:
            self.refresh_memories()

    def _frozen_copy(self, state):
        info_bank = copy.deepcopy(self.model)
        info_bank.load_model(state)
        return info_bank.eval().requires_grad_(False)

    @torch.no_grad()
    def refresh_memories(self):
        """One pass through the info bank overwrites both contrast memories (--update_memory_bank);
        under torchrun each process passes its share and every process writes every row."""
        print("==> refreshing the contrast memories with the info bank")
        written = torch.zeros(self.n_data, dtype=torch.bool, device=self.precision.device)
        # The instance loader: this pass needs images and indices, not 16k negatives per sample.
        for batch in _progress(self._loader("instance"), "memory refresh"):
            images, _, index = self.precision.prepare(batch[:3])
            with self.precision.autocast():
                feature = self.info_bank(images, is_feat=True)[0][-1]
            self.ctc_loss.overwrite_memories(index, feature, written)

    def state_dict(self):
        state = {"instance": self.instance_loss.state_dict(), "ctc": self.ctc_loss.state_dict()}
        if self.info_bank is not None:
            state["info_bank"] = self.info_bank.state_dict()
        return state

    def load_state_dict(self, state):
        self.instance_loss.load_state_dict(state["instance"])
        self.ctc_loss.load_state_dict(state["ctc"])
        if "info_bank" in state:
            self.info_bank = self._frozen_copy(state["info_bank"])
