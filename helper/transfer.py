"""Linear transfer of one checkpoint (SPEC 7): a new Linear on a frozen backbone, three protocols.

    train_bn  the paper's protocol and the default. The network stays in train() mode while
              only the new layer learns, so BatchNorm normalises with batch statistics and
              its running statistics drift to the target data; the test pass after each
              target epoch is in eval() mode and uses those drifted statistics. The backbone
              is frozen, so it runs under no_grad: same numbers as backpropagating through
              it (nothing but the Linear is updated), far less work.
    adabn     BatchNorm statistics re-estimated on the target training data in one pass
              (a cumulative average over batches), then frozen; features computed once for
              both splits and the Linear trained on them with the same optimizer settings.
    frozen    eval-mode features with the source statistics, computed once, same training.

BatchNorm mode is what separates them (MoCo's linear probe keeps the backbone in eval()
for exactly this reason): under train_bn the "frozen" backbone's normalisation changes
every step, so its features are not fixed and cannot be cached. adabn and frozen cache
features and run ~100x faster; bench/BENCHMARKS.md says how far their numbers land.

amp=True runs every backbone forward pass (train_bn's feature and test passes, adabn's
statistics pass, the cached features) under bf16 autocast with the model and its input
in channels_last memory format; features are cast back to float32, so the Linear and its
training stay float32. The paper's numbers are float32; BENCHMARKS.md measures the cost.

Accuracies are fractions in [0, 1], computed as correct / total in Python floats, the
way the reference prints them.
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dataset import DeviceLoader, dataset_info, load_arrays
from helper.features import extract_features, feature_extractor
from helper.precision import autocast, in_channels_last

PROTOCOLS = ("train_bn", "adabn", "frozen")


def probe_name(target_tag, protocol, amp):
    """'cifar10_adabn', or 'cifar10_adabn_amp' under --amp: the results file is
    transfer_<probe_name>.jsonl in the run folder and the TensorBoard tag transfer/<probe_name>,
    so float32 and bf16 results of a run live side by side."""
    return f"{target_tag}_{protocol}" + ("_amp" if amp else "")


@dataclass(frozen=True)
class ProbeSettings:
    epochs: int = 30            # target epochs
    lr: float = 0.4             # SGD, cosine-annealed to 0 over `epochs`, stepped once per epoch
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 512


@dataclass
class TargetData:
    """Both splits of a target data set as uint8 NHWC tensors on the probe's device.

    Normalisation uses the target's own mean/std, as the reference's target loader does.
    """
    name: str
    num_classes: int
    mean: tuple
    std: tuple
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def loader(self, split, batch_size, shuffle=False, generator=None):
        if split == "train":
            images, labels = self.train_images, self.train_labels
        else:
            images, labels = self.test_images, self.test_labels
        # train=False: the reference probes without augmentation, on either split.
        return DeviceLoader(images, labels, batch_size, self.mean, self.std, images.device,
                            train=False, shuffle=shuffle, generator=generator)


def load_target(name, root, device):
    """TargetData of data set `name` ('train' split to fit, evaluation split to test)."""
    info = dataset_info(name)
    arrays = {split: load_arrays(name, root, split) for split in ("train", "test")}

    def to_device(array, dtype):
        return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype).to(device)

    return TargetData(info.name, info.num_classes, tuple(info.mean), tuple(info.std),
                      to_device(arrays["train"][0], torch.uint8), to_device(arrays["train"][1], torch.int64),
                      to_device(arrays["test"][0], torch.uint8), to_device(arrays["test"][1], torch.int64))


@dataclass
class ProbeResult:
    acc_per_epoch: list         # test accuracy after each target epoch

    @property
    def best_acc(self):
        return max(self.acc_per_epoch)

    @property
    def final_acc(self):
        return self.acc_per_epoch[-1]


class BackboneChanged(RuntimeError):
    """A probe modified backbone weights: a bug in the probe, never the user's fault."""


# --------------------------------------------------------------------------- the probe

def run_probe(model, target, protocol, settings, seed=0, on_epoch=None, amp=False):
    """Fit a new Linear on `model` (source weights loaded, on the target's device) and test it.

    The model's classifier is replaced; backbone weights are checked to be unchanged
    afterwards (BackboneChanged if not). `on_epoch(t, best_so_far)` is called after
    each target epoch t = 1..epochs. The same `seed` gives every checkpoint the same
    initial Linear and batch order, so checkpoints differ only in their backbone.
    amp: bf16 autocast and channels_last for the backbone's forward passes (module docstring).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    device = target.train_images.device
    classifier = new_classifier(model.feat_dim, target.num_classes, seed).to(device)
    model.set_classifier(classifier)
    snapshot = backbone_snapshot(model)
    for _, parameter in backbone_parameters(model):
        parameter.requires_grad_(False)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    if protocol == "train_bn":
        accuracies = _probe_train_bn(model, classifier, target, settings, generator, on_epoch, amp)
    else:
        train_features, test_features = cached_features(model, target, protocol, settings.batch_size, generator,
                                                        amp)
        accuracies = train_linear_on_features(classifier, train_features, target.train_labels, test_features,
                                              target.test_labels, settings, generator, on_epoch)
    sanity_check(model, snapshot)
    return ProbeResult(accuracies)


def new_classifier(feat_dim, num_classes, seed):
    """nn.Linear(feat_dim, num_classes) with nn.Linear's own initialisation, drawn from `seed`."""
    linear = nn.Linear(feat_dim, num_classes)
    generator = torch.Generator().manual_seed(seed)
    bound = 1 / feat_dim ** 0.5  # what kaiming_uniform_(a=sqrt(5)) and the bias init of nn.Linear reduce to
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound, generator=generator)
        linear.bias.uniform_(-bound, bound, generator=generator)
    return linear


def _linear_optimizer(classifier, settings):
    optimizer = torch.optim.SGD(classifier.parameters(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)


def _record(accuracies, accuracy, on_epoch):
    accuracies.append(accuracy)
    if on_epoch is not None:
        on_epoch(len(accuracies), max(accuracies))


def _probe_train_bn(model, classifier, target, settings, generator, on_epoch, amp=False):
    train_loader = target.loader("train", settings.batch_size, shuffle=True, generator=generator)
    test_loader = target.loader("test", settings.batch_size)
    in_channels_last(model, amp)
    optimizer, scheduler = _linear_optimizer(classifier, settings)
    accuracies = []
    for _ in range(settings.epochs):
        model.train()  # BatchNorm: batch statistics, running statistics updated every step
        for images, labels in train_loader:
            with torch.no_grad(), autocast(images.device, amp):
                features = model(in_channels_last(images, amp), is_feat=True)[0][-1].float()
            loss = F.cross_entropy(classifier(features), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        _record(accuracies, evaluate(model, test_loader, amp), on_epoch)
    return accuracies


@torch.no_grad()
def evaluate(model, loader, amp=False):
    """Eval-mode top-1 accuracy of `model` on `loader`, as a fraction.

    The backbone runs as `feature_extractor` (BatchNorm folded; bf16 under amp) and the
    classifier reads its float32 features, as the model's own forward pass would.
    """
    features, classifier = feature_extractor(model, amp), model.get_classifier()
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    for images, labels in loader:
        with autocast(images.device, amp):
            pooled = features(in_channels_last(images, amp))
        correct += (classifier(pooled.float()).argmax(dim=1) == labels).sum()
    return int(correct.item()) / loader.dataset_size


# --------------------------------------------------------------------------- cached features

def cached_features(model, target, protocol, batch_size, generator, amp=False):
    """(train, test) eval-mode pooled features of the target, after adapting BatchNorm for 'adabn'."""
    if protocol == "adabn":
        adapt_batchnorm(model, target.loader("train", batch_size, shuffle=True, generator=generator), amp)
    elif protocol != "frozen":
        raise ValueError(f"protocol {protocol!r} does not cache features")
    return tuple(extract_features(model, images, target.mean, target.std, images.device, amp=amp)
                 for images in (target.train_images, target.test_images))


@torch.no_grad()
def adapt_batchnorm(model, loader, amp=False):
    """Replace every BatchNorm's running statistics by their average over one pass of `loader`.

    momentum=None makes BatchNorm keep a cumulative average of the batch statistics
    instead of an exponential one, so every batch counts the same and the source
    statistics are forgotten entirely. Batches should be shuffled: batches of a single
    class would average within-class variances and underestimate the spread.
    amp: bf16 autocast and channels_last for the forward passes; the statistics stay float32.
    """
    layers = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    model.train()
    in_channels_last(model, amp)
    for images, _ in loader:
        with autocast(images.device, amp):
            model(in_channels_last(images, amp))
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    model.eval()


def train_linear_on_features(classifier, train_features, train_labels, test_features, test_labels,
                             settings, generator, on_epoch=None):
    """SGD on cached features with the probe's settings; test accuracy after each epoch.

    Computes what `train_linear_plain` computes -- nn.Linear, mean cross-entropy,
    torch.optim.SGD with momentum and weight decay, CosineAnnealingLR, the same batch
    order -- with the gradient written out. A CINIC-10-sized target needs 30 x 176 steps
    of a 512 x feat_dim x 10 problem: each is a few microseconds of GPU work, so
    autograd's and the optimizer's per-step launches and Python would dominate the
    probe. Here a step is seven small operators and the trained layer is copied back into
    `classifier` at the end.
    """
    batch_size, momentum, weight_decay = settings.batch_size, settings.momentum, settings.weight_decay
    # [W | b] against [x | 1]: one product each way per step and one tensor to update
    # (weight decay applies to the bias too, as in the optimizer over classifier.parameters()).
    weights = torch.cat([classifier.weight.detach(), classifier.bias.detach()[:, None]], 1)
    # torch's first momentum step sets the buffer to the gradient; momentum * 0 + g is exactly that.
    buffer = torch.zeros_like(weights)
    train_inputs, test_inputs = _with_ones(train_features), _with_ones(test_features)
    targets = F.one_hot(train_labels, classifier.out_features).to(weights.dtype)
    count = train_labels.numel()
    accuracies = []
    for lr in cosine_learning_rates(settings):
        order = torch.randperm(count, generator=generator, device=train_features.device)
        # One gather per epoch, not two per step: the loop is bound by operator launches.
        shuffled = zip(train_inputs.index_select(0, order).split(batch_size),
                       targets.index_select(0, order).split(batch_size))
        for x, y in shuffled:
            residual = torch.softmax(x @ weights.T, dim=1).sub_(y)  # batch size x d(mean loss)/d(logits)
            gradient = torch.addmm(weights, residual.T, x, beta=weight_decay, alpha=1 / len(x))  # + wd * W
            buffer.mul_(momentum).add_(gradient)
            weights.add_(buffer, alpha=-lr)
        correct = ((test_inputs @ weights.T).argmax(dim=1) == test_labels).sum()
        _record(accuracies, int(correct.item()) / test_labels.numel(), on_epoch)
    with torch.no_grad():
        classifier.weight.copy_(weights[:, :-1])
        classifier.bias.copy_(weights[:, -1])
    return accuracies


def _with_ones(features):
    return torch.cat([features, features.new_ones(len(features), 1)], dim=1)


def cosine_learning_rates(settings):
    """The learning rate of each target epoch, read from CosineAnnealingLR itself: its
    recursive update rounds differently from the closed-form cosine."""
    optimizer, scheduler = _linear_optimizer(nn.Linear(1, 1), settings)
    rates = []
    for _ in range(settings.epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients: changes nothing, keeps the scheduler's order check quiet
        scheduler.step()
    return rates


def train_linear_plain(classifier, train_features, train_labels, test_features, test_labels,
                       settings, generator, on_epoch=None):
    """`train_linear_on_features` the plain way (autograd and torch.optim): the definition
    the fast version is tested against, and the baseline of bench/transfer_speed.py."""
    optimizer, scheduler = _linear_optimizer(classifier, settings)
    count = train_labels.numel()
    accuracies = []
    for _ in range(settings.epochs):
        order = torch.randperm(count, generator=generator, device=train_features.device)
        for batch in order.split(settings.batch_size):
            loss = F.cross_entropy(classifier(train_features[batch]), train_labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        with torch.no_grad():
            correct = (classifier(test_features).argmax(dim=1) == test_labels).sum()
        _record(accuracies, int(correct.item()) / test_labels.numel(), on_epoch)
    return accuracies


# --------------------------------------------------------------------------- sanity check

def backbone_parameters(model):
    """[(name, parameter)] of everything but the classifier."""
    classifier_ids = {id(p) for p in model.get_classifier().parameters()}
    return [(name, p) for name, p in model.named_parameters() if id(p) not in classifier_ids]


def backbone_snapshot(model):
    """Copies of the backbone's parameters. BatchNorm buffers are left out on purpose:
    train_bn and adabn change them by design."""
    return {name: p.detach().clone() for name, p in backbone_parameters(model)}


def sanity_check(model, snapshot):
    """Raise BackboneChanged if any backbone parameter differs from `snapshot` (MoCo-style)."""
    current = dict(model.named_parameters())
    changed = [name for name, saved in snapshot.items() if not torch.equal(current[name].detach(), saved)]
    if changed:
        raise BackboneChanged(f"the linear probe changed {len(changed)} backbone parameter tensor(s), e.g. "
                              f"{', '.join(changed[:3])}; its numbers are not a linear-probe result")
