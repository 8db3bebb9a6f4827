"""MINE: mutual information estimates with a trained critic (Belghazi et al. 2018, SPEC 8).

`estimate_mi(a, b, ...)` estimates I(A;B) in nats from row-aligned samples; the
batched form `estimate_mi_batched` trains K independent critics in the same kernels
(weights carry a leading copy dimension) for K checkpoints or K calibration problems.

The protocol is the reference's: a critic MLP [a|b -> h -> h -> h -> 1], Adam, per
iteration a joint batch and a marginal batch (the `a` rows of one random draw paired
with the `b` rows of an independent draw), the Donsker-Varadhan bound
mean(T_joint) - log mean(exp T_marg), a moving average of mean(exp T_marg) that
corrects the bias of the gradient, and as the estimate the mean of the last 500 bounds
(of the finite ones: skipped steps leave a NaN in the curve).

What differs from the reference, on purpose:
- data, sampling and the per-iteration curve stay on the device: no numpy sampling,
  no host copies, no host sync per iteration;
- the moving average is kept detached (the reference's grows an autograd graph);
- log mean exp is computed with logsumexp and the moving average in log space, so a
  large critic output cannot overflow exp();
- a non-finite step is skipped per critic: its weights, Adam moments, step count and
  moving average stay as they were (the reference resets the average to 0, which makes
  the next gradient explode).

Each result carries convergence diagnostics (is the smoothed bound still rising, flat or
falling over the last windows; were steps skipped) and, with `eval_fraction`, the bound
on held-out rows, which tells a critic that measures the dependence from one that
memorises the sample.
"""
import math
import warnings
from dataclasses import dataclass, field

import torch

from helper.precision import autocast

MA_RATE = 0.01          # moving-average rate of mean(exp T_marg), as in the reference
INIT_STD = 0.02         # std of the first three layers' weights, as in the reference
AVERAGE_LAST = 500      # the estimate is the mean of this many last bounds
TOLERANCE = 0.02        # relative change over TREND_SPAN windows under which the estimate counts as flat
TREND_SPAN = 4          # windows between the two window means whose difference is the trend
NOISE_SIGMAS = 3.0      # changes within this many standard errors count as noise
SCALE_FLOOR = 0.05      # nats: relative changes of estimates near 0 are measured against this
HELDOUT_SHUFFLES = 4    # derangements per held-out group: the marginal pairs of a held-out bound
GROUP_ROWS = 100        # held-out rows per jackknife group
MIN_GROUPS = 10         # fewer groups than this make the jackknife too coarse
OVERFIT_GAP = 0.1       # a training estimate this much (relative) above the held-out bound is overfitting
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, used by the reference


class MineInputError(ValueError):
    """Inputs the estimators cannot use (shapes, devices, too few rows for the split or batch):
    mine.py turns these, and only these, into a one-line user error."""


@dataclass
class MineResult:
    """One critic's outcome. `curve` holds the per-iteration bound (NaN where a step was skipped)."""
    estimate: float
    curve: torch.Tensor
    iterations: int
    skipped_steps: int
    moving_average: float
    heldout_estimate: float | None
    average_last: int
    heldout_curve: list = field(default_factory=list)  # [(iteration, held-out bound)] once per window
    diagnostics: dict = field(default_factory=dict)
    protocol: str = "reference"
    stderr: float | None = None     # of `estimate`; for the reference protocol only the spread of its bounds
    iteration: int | None = None    # the iteration `estimate` comes from (the last of its window)

    def smoothed(self):
        """Trailing mean of the finite bounds over `average_last` iterations; its last value is the estimate."""
        return trailing_mean(self.curve, self.average_last)


# --------------------------------------------------------------------------- critic

class BatchedCritic(torch.nn.Module):
    """K independent critics [a | b -> h -> h -> h -> 1] (ReLU) evaluated with batched matmuls.

    The first layer is split by input, a @ W_a + b @ W_b, which equals one Linear on the
    concatenation [a, b] and lets an input shared by every copy (the images X of
    I(X;T), the labels Y of I(T;Y)) be stored once.

    All weights of copy k are row k of one [K, P] buffer (`flat_weights`), and their
    gradients accumulate into row k of `flat_grads`: the optimizer then updates every
    layer with a handful of whole-buffer operations instead of a dozen per layer, which
    matters on a GPU where a step is otherwise bound by kernel launches.
    """

    def __init__(self, copies, a_dim, b_dim, hidden, generator=None, device=None):
        super().__init__()
        shapes = {"w_a": (a_dim, hidden), "w_b": (b_dim, hidden), "b_1": (1, hidden),
                  "w_2": (hidden, hidden), "b_2": (1, hidden), "w_3": (hidden, hidden), "b_3": (1, hidden),
                  "w_4": (hidden, 1), "b_4": (1, 1)}
        sizes = [math.prod(shape) for shape in shapes.values()]
        self.flat_weights = torch.zeros(copies, sum(sizes), device=device)
        self.flat_grads = torch.zeros_like(self.flat_weights)
        chunks = zip(self.flat_weights.split(sizes, dim=1), self.flat_grads.split(sizes, dim=1))
        for (name, shape), (weights, grads) in zip(shapes.items(), chunks):
            param = torch.nn.Parameter(weights.view(copies, *shape))  # shares the buffer's storage
            param.grad = grads.view(copies, *shape)  # backward adds into it in place
            self.register_parameter(name, param)
        # Every copy starts from the same draw, the one a lone critic gets: a checkpoint's
        # estimate does not depend on which others share its batch (--batch_ckpts is a
        # speed setting, like the shard it runs in).
        with torch.no_grad():
            for param in (self.w_a, self.w_b, self.w_2, self.w_3):  # biases stay 0, as in the reference
                param.copy_(torch.randn(param.shape[1:], generator=generator, device=device) * INIT_STD)
            for param in (self.w_4, self.b_4):  # nn.Linear's own init, which the reference keeps here
                bound = 1.0 / math.sqrt(hidden)
                param.copy_((torch.rand(param.shape[1:], generator=generator, device=device) * 2 - 1) * bound)

    @property
    def copies(self):
        return self.flat_weights.shape[0]

    def zero_grad(self, set_to_none=True):
        """Zero the gradients in place: nn.Module's would set them to None and cut them
        loose from flat_grads, which the optimizer reads."""
        self.flat_grads.zero_()

    def forward(self, a_rows, b_rows):
        """a_rows/b_rows: [B, d] (shared by all copies) or [K, B, d] -> critic values [K, B]."""
        a_rows, b_rows = self._per_copy(a_rows), self._per_copy(b_rows)
        hidden = torch.baddbmm(torch.baddbmm(self.b_1, a_rows, self.w_a), b_rows, self.w_b).relu()
        hidden = torch.baddbmm(self.b_2, hidden, self.w_2).relu()
        hidden = torch.baddbmm(self.b_3, hidden, self.w_3).relu()
        return torch.baddbmm(self.b_4, hidden, self.w_4).squeeze(-1)

    def _per_copy(self, rows):
        # A shared input is broadcast with a zero batch stride: no copy per critic.
        return rows.expand(self.copies, *rows.shape) if rows.dim() == 2 else rows


class MaskedAdam:
    """torch.optim.Adam's update (default betas and eps) of [K, P] weights, one row per copy.

    `step(ok)` updates only copies with ok[k] and finite gradients, and returns that mask:
    any other copy keeps its weights, moments and step count, as if the iteration had not
    happened.
    """

    def __init__(self, weights, grads, lr):
        self.weights, self.grads, self.lr = weights, grads, lr
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(weights), torch.zeros_like(weights)
        self.steps = torch.zeros(len(weights), device=weights.device)

    @torch.no_grad()
    def step(self, ok):
        beta1, beta2 = ADAM_BETAS
        ok = ok & torch.isfinite(self.grads).all(dim=1)
        self.steps += ok
        started = self.steps > 0  # a copy that never took a step must not divide by 1 - beta**0 = 0
        bias1 = torch.where(started, 1 - beta1 ** self.steps, 1.0)
        bias2_sqrt = torch.where(started, (1 - beta2 ** self.steps).sqrt(), 1.0)
        step_size = torch.where(ok, self.lr / bias1, 0.0)[:, None]
        row_ok = ok[:, None]
        grad = torch.where(row_ok, self.grads, 0.0)
        self.exp_avg.mul_(torch.where(row_ok, beta1, 1.0)).add_(grad, alpha=1 - beta1)
        self.exp_avg_sq.mul_(torch.where(row_ok, beta2, 1.0)).addcmul_(grad, grad, value=1 - beta2)
        denom = self.exp_avg_sq.sqrt().div_(bias2_sqrt[:, None]).add_(ADAM_EPS)
        self.weights.sub_(self.exp_avg.div(denom).mul_(step_size))
        return ok


# --------------------------------------------------------------------------- estimation

def estimate_mi(a, b, *, iters, lr, batch_size=5000, hidden_size=1024, **options):
    """I(A;B) in nats from row-aligned [N, d_a] and [N, d_b] tensors; see estimate_mi_batched."""
    if a.dim() != 2 or b.dim() != 2:
        raise MineInputError(f"estimate_mi takes two 2-D tensors, got shapes {list(a.shape)} and {list(b.shape)}")
    return estimate_mi_batched(a, b, iters=iters, lr=lr, batch_size=batch_size,
                               hidden_size=hidden_size, **options)[0]


def estimate_mi_batched(a, b, *, iters, lr, batch_size=5000, hidden_size=1024, average_last=AVERAGE_LAST,
                        seed=0, amp=False, eval_fraction=0.0, early_stop=False, tolerance=TOLERANCE):
    """Train one critic per copy and return a MineResult per copy.

    a, b: row-aligned tensors on the device where the work runs, each either [N, d]
    (shared by every copy) or [K, N, d] (one per copy). Rows are drawn without
    replacement, the same rows for every copy in an iteration (each copy still sees
    the reference's sampling, and a shared input is gathered once).
    amp: bf16 autocast for the critic (on any device, helper.precision.autocast).
    eval_fraction: hold out this fraction of rows; the critic never trains on them, and
    the DV bound on them (HeldOutGroups: fixed joint and shuffled pairs, with a jackknife
    standard error) is evaluated once per window of `average_last` iterations
    (`heldout_curve`) and at the end (`heldout_estimate`): a diagnostic of memorisation.
    early_stop: end a copy's training once its smoothed estimate has been flat for two
    consecutive windows of `average_last` iterations (see convergence_diagnostics); it
    reads the curve back once per window, the only host sync inside the loop.
    """
    copies, rows, device = check_inputs(a, b)
    generator = torch.Generator(device=device).manual_seed(seed)
    train_rows, heldout_rows = split_rows(rows, eval_fraction, generator, device)
    heldout = None if heldout_rows is None else HeldOutGroups(a, b, heldout_rows, batch_size, amp, generator)
    training = CriticTraining(a, b, train_rows, iters, lr=lr, batch_size=batch_size, hidden_size=hidden_size,
                              amp=amp, generator=generator)
    window = min(average_last, iters)
    heldout_points = []  # (iteration, bound per copy on the device): read back only at the end
    with training:
        while training.done < iters:
            training.step()
            done = training.done
            if heldout is not None and (done % window == 0 or done == iters):
                bound, replicates = heldout(training.critic)
                heldout_points.append((done, torch.stack((bound, jackknife_stderr(replicates).float()), dim=1)))
            if early_stop and done % window == 0 and done < iters:
                if _stop_flat_copies(training.curve[:done].cpu(), window, tolerance, training, done):
                    break
    curve, log_ma = training.curve.cpu(), training.log_ma.cpu()
    heldout_points = [(done, values.cpu()) for done, values in heldout_points]
    stopped_at = training.stopped_at
    return [_result(curve[:stopped_at[k], k], stopped_at[k] < iters, log_ma[k],
                    [(done, *map(float, values[k])) for done, values in heldout_points if done <= stopped_at[k]],
                    window, tolerance)
            for k in range(len(stopped_at))]


class CriticTraining:
    """K critics trained with the reference's batches and loss, one iteration per `step()`;
    both protocols (this module's and helper/mine/heldout.py's) drive it.

    train_rows: the row ids the batches are drawn from, or an int N for all rows.
    `curve[i, k]` is copy k's DV bound on iteration i's training batches (NaN where its step
    was skipped or the copy had stopped); `stop(k)` freezes copy k from the next step on.
    Use it as a context manager around the loop (it silences one expected warning).
    """

    def __init__(self, a, b, train_rows, iters, *, lr, batch_size, hidden_size, amp, generator):
        copies, device = max(x.shape[0] if x.dim() == 3 else 1 for x in (a, b)), a.device
        train_count = train_rows if isinstance(train_rows, int) else len(train_rows)
        if batch_size > train_count:
            raise MineInputError(f"batch size {batch_size} exceeds the {train_count} rows available for training")
        self.a, self.b, self.train_rows, self.batch_size, self.amp = a, b, train_rows, batch_size, amp
        self.generator = generator
        self.critic = BatchedCritic(copies, a.shape[-1], b.shape[-1], hidden_size, generator, device)
        self.optimizer = MaskedAdam(self.critic.flat_weights, self.critic.flat_grads, lr)
        self.log_ma = torch.zeros(copies, device=device)  # log of the moving average, which starts at 1
        self.curve = torch.full((iters, copies), float("nan"), device=device)
        self.active = torch.ones(copies, dtype=torch.bool, device=device)  # masks the update on the device
        self.running = [True] * copies  # the same on the host: asking the device would sync every iteration
        self.stopped_at = [iters] * copies
        self.done = 0

    def __enter__(self):
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        # Gradients land in rows of flat_grads on purpose; autograd would prefer them contiguous.
        warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
        return self

    def __exit__(self, *exc):
        return self._warnings.__exit__(*exc)

    def step(self):
        a_rows, b_rows = _draw_batches(self.a, self.b, self.train_rows, self.batch_size, self.generator)
        with autocast(self.a.device, self.amp):
            critic_out = self.critic(a_rows, b_rows).float()
        bound, loss, log_ma_next = _dv_step(critic_out, self.batch_size, self.log_ma)
        ok = torch.isfinite(loss) & self.active
        self.critic.zero_grad()
        torch.where(ok, loss, 0.0).sum().backward()
        ok = self.optimizer.step(ok)
        self.log_ma = torch.where(ok, log_ma_next, self.log_ma)
        self.curve[self.done] = torch.where(ok, bound.detach(), float("nan"))
        self.done += 1

    def stop(self, copy):
        self.active[copy] = False
        self.running[copy] = False
        self.stopped_at[copy] = self.done

    @property
    def stopped(self):
        return not any(self.running)


def check_inputs(a, b):
    if a.device != b.device:
        raise MineInputError(f"a is on {a.device} but b on {b.device}")
    if a.dim() not in (2, 3) or b.dim() not in (2, 3):
        raise MineInputError(f"inputs must be [N, d] or [K, N, d], got {list(a.shape)} and {list(b.shape)}")
    copies = {x.shape[0] for x in (a, b) if x.dim() == 3} or {1}
    if len(copies) > 1 or a.shape[-2] != b.shape[-2]:
        raise MineInputError(f"inputs disagree on copies or rows: {list(a.shape)} and {list(b.shape)}")
    return copies.pop(), a.shape[-2], a.device


def training_row_count(rows, eval_fraction):
    """How many of `rows` the critic trains on when `eval_fraction` of them are held out."""
    return rows - int(round(rows * eval_fraction))


def split_rows(rows, eval_fraction, generator, device):
    """(training rows, held-out rows): ids, or (N, None) when nothing is held out (all of 0..N-1 train)."""
    if not 0 <= eval_fraction < 1:
        raise MineInputError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    heldout_count = rows - training_row_count(rows, eval_fraction)
    if eval_fraction and not 2 <= heldout_count < rows:
        raise MineInputError(f"eval_fraction {eval_fraction} of {rows} rows leaves no usable held-out or training set")
    if not heldout_count:
        return rows, None
    order = torch.randperm(rows, generator=generator, device=device)
    return order[heldout_count:], order[:heldout_count]


def _draw_batches(a, b, train_rows, batch_size, generator):
    """Rows of the joint batch (draw 0 for both) followed by the marginal batch (draw 1 for a, draw 2 for b).

    train_rows: the row ids to draw from, or an int N for all rows (then no extra gather).
    """
    count = train_rows if isinstance(train_rows, int) else len(train_rows)
    draws = [torch.randperm(count, generator=generator, device=a.device)[:batch_size] for _ in range(3)]
    if not isinstance(train_rows, int):
        draws = [train_rows[draw] for draw in draws]
    a_index, b_index = torch.cat((draws[0], draws[1])), torch.cat((draws[0], draws[2]))
    return take_rows(a, a_index), take_rows(b, b_index)


def take_rows(x, index):
    return x.index_select(x.dim() - 2, index)


def _dv_step(critic_out, batch_size, log_ma):
    """Per copy: the DV bound, the bias-corrected loss, and the next log moving average.

    The reference's loss is -(mean T_j - log(mean e^T_m) * mean e^T_m / ma), both factors
    detached; its gradient only needs their ratio, which is <= 1/MA_RATE because the new
    average already contains the current mean. Keeping everything in log space means
    no exp() of a raw critic value can overflow.
    """
    joint, marginal = critic_out[:, :batch_size], critic_out[:, batch_size:]
    mean_joint = joint.mean(dim=1)
    log_mean_exp = torch.logsumexp(marginal, dim=1) - math.log(batch_size)
    bound = mean_joint - log_mean_exp
    log_mean_exp_const = log_mean_exp.detach()
    log_ma_next = torch.logaddexp(log_ma + math.log(1 - MA_RATE), log_mean_exp_const + math.log(MA_RATE))
    ratio = torch.exp(log_mean_exp_const - log_ma_next)
    loss = -(mean_joint - log_mean_exp * ratio)
    return bound, loss, log_ma_next


def _stop_flat_copies(curve, window, tolerance, training, done):
    """Stop the copies whose trend was flat at this check and the one before; True when none is left."""
    for k in range(curve.shape[1]):
        if training.running[k]:
            trends = [window_trend(curve[:end, k], window, tolerance)["trend"] for end in (done - window, done)]
            if trends == ["flat", "flat"]:
                training.stop(k)
    return training.stopped


class HeldOutGroups:
    """The DV bound of every critic on held-out rows, and its delete-one-group replicates.

    The held-out rows (already in random order) are cut into groups of about GROUP_ROWS.
    Every row is a joint pair; each of HELDOUT_SHUFFLES shuffles pairs every row's a with the
    b of the next row in a random cyclic order of its own group (a derangement: never its own
    b). So a group's statistics use only its own rows, the groups are independent units for
    the jackknife, and the pairs are fixed: evaluations at different iterations compare.
    """

    def __init__(self, a, b, rows, batch_size, amp, generator):
        count = len(rows)
        groups = min(max(MIN_GROUPS, count // GROUP_ROWS), count // 2)  # a derangement needs 2 rows
        if groups < 2:
            raise MineInputError(f"{count} held-out rows are too few for a held-out bound; raise eval_fraction")
        self.a, self.b, self.batch_size, self.amp, self.groups = a, b, batch_size, amp, groups
        device = rows.device
        group = torch.arange(count, device=device) * groups // count  # contiguous groups of near-equal size
        sizes = torch.bincount(group, minlength=groups)
        starts = torch.cumsum(sizes, 0) - sizes
        a_index, b_index, group_ids = [rows], [rows], [group]
        for _ in range(HELDOUT_SHUFFLES):
            # Sort by (group, random key): a random order inside each group, groups still contiguous.
            order = torch.argsort(group * 2.0 + torch.rand(count, generator=generator, device=device))
            following = torch.arange(1, count + 1, device=device)
            following = torch.where(following == starts[group] + sizes[group], starts[group], following)
            a_index.append(rows[order])
            b_index.append(rows[order[following]])
            group_ids.append(group)
        self.a_index, self.b_index = torch.cat(a_index), torch.cat(b_index)
        self.group_ids, self.joint_count = torch.cat(group_ids), count
        self.joint_sizes, self.marginal_sizes = sizes, sizes * HELDOUT_SHUFFLES

    @torch.no_grad()
    def __call__(self, critic):
        """([K] DV bounds on all groups, [K, G] the bounds with one group left out each)."""
        values = []
        for start in range(0, len(self.a_index), self.batch_size):
            a_rows = take_rows(self.a, self.a_index[start:start + self.batch_size])
            b_rows = take_rows(self.b, self.b_index[start:start + self.batch_size])
            with autocast(a_rows.device, self.amp):
                values.append(critic(a_rows, b_rows).float())
        values = torch.cat(values, dim=1)
        joint, marginal = values[:, :self.joint_count], values[:, self.joint_count:]
        joint_group, marginal_group = self.group_ids[:self.joint_count], self.group_ids[self.joint_count:]
        joint_sums = torch.zeros(len(values), self.groups, device=values.device).index_add_(1, joint_group, joint)
        log_sum_exps = group_logsumexp(marginal, marginal_group, self.groups)
        bound = dv_from_groups(joint_sums, log_sum_exps, self.joint_sizes, self.marginal_sizes)
        # Leave group g out: the other groups' sums, and the logsumexp over the other groups.
        left_out = torch.eye(self.groups, dtype=torch.bool, device=values.device)
        others = log_sum_exps[:, None, :].masked_fill(left_out, -math.inf)
        replicates = ((joint_sums.sum(1, keepdim=True) - joint_sums) / (self.joint_count - self.joint_sizes)
                      - (torch.logsumexp(others, dim=2)
                         - torch.log(self.marginal_sizes.sum() - self.marginal_sizes).to(values.dtype)))
        return bound, replicates


def group_logsumexp(values, group_ids, groups):
    """[K, G]: logsumexp of the [K, M] values of each group, stable for large critic values."""
    peak = torch.full((len(values), groups), -math.inf, device=values.device)
    peak = peak.scatter_reduce(1, group_ids.expand_as(values), values, reduce="amax")
    sums = torch.zeros_like(peak).index_add_(1, group_ids, torch.exp(values - peak[:, group_ids]))
    return peak + torch.log(sums)


def dv_from_groups(joint_sums, log_sum_exps, joint_sizes, marginal_sizes):
    """[K]: mean of the joint values minus log mean exp of the marginal values, from per-group sums."""
    mean_joint = joint_sums.sum(1) / joint_sizes.sum()
    return mean_joint - (torch.logsumexp(log_sum_exps, dim=1) - math.log(int(marginal_sizes.sum())))


def jackknife_stderr(replicates):
    """[..., G] delete-one-group replicates -> standard error: sqrt((G-1)/G * sum_g (r_g - mean r)^2)."""
    replicates = replicates.double()
    groups = replicates.shape[-1]
    spread = ((replicates - replicates.mean(-1, keepdim=True)) ** 2).sum(-1)
    return ((groups - 1) / groups * spread).sqrt()


def _result(curve, stopped_early, log_ma, heldout_points, window, tolerance):
    """heldout_points: [(iteration, held-out bound, its standard error)]."""
    estimate = float(trailing_mean(curve, window)[-1]) if len(curve) else float("nan")
    heldout_curve = [(done, value) for done, value, _ in heldout_points]
    heldout_noise = heldout_points[-1][2] if heldout_points else None
    diagnostics = convergence_diagnostics(curve, window, tolerance)
    diagnostics.update(stopped_early=stopped_early, **heldout_diagnostics(estimate, heldout_curve, heldout_noise))
    last = curve[-window:]
    last = last[torch.isfinite(last)]
    # Iteration-to-iteration noise of the last window only: it knows nothing of memorisation.
    stderr = float(last.std() / math.sqrt(len(last))) if len(last) > 1 else None
    return MineResult(estimate=estimate, curve=curve, iterations=len(curve),
                      skipped_steps=int((~torch.isfinite(curve)).sum()), moving_average=float(log_ma.exp()),
                      heldout_estimate=diagnostics["heldout_estimate"], average_last=window,
                      heldout_curve=heldout_curve, diagnostics=diagnostics, stderr=stderr, iteration=len(curve))


# --------------------------------------------------------------------------- diagnostics

def trailing_mean(curve, window):
    """Mean of the finite values among the last `window` entries, at every position of a 1-D curve."""
    finite = torch.isfinite(curve)
    values = torch.cat((torch.zeros(1, dtype=torch.float64), torch.where(finite, curve, 0.0).double().cumsum(0)))
    counts = torch.cat((torch.zeros(1, dtype=torch.float64), finite.double().cumsum(0)))
    ends = torch.arange(1, len(curve) + 1)
    starts = (ends - window).clamp(min=0)
    return ((values[ends] - values[starts]) / (counts[ends] - counts[starts])).float()


def window_trend(curve, window, tolerance=TOLERANCE):
    """Change of the mean bound of the last window against a window TREND_SPAN windows earlier
    (or the earliest full one), on a 1-D curve.

    'rising' / 'falling' when the change exceeds both `tolerance` of the estimate's scale
    and NOISE_SIGMAS standard errors of the difference; 'flat' otherwise. Looking several
    windows back catches a slow drift (a critic memorising the sample) that two
    neighbouring windows would call flat.
    """
    windows = len(curve) // window
    if windows < 2:
        return {"trend": "short", "rel_change": None, "noise": None, "span": None}
    back = min(TREND_SPAN, windows - 1)
    last, earlier = curve[-window:], curve[len(curve) - (back + 1) * window:len(curve) - back * window]
    last, earlier = last[torch.isfinite(last)], earlier[torch.isfinite(earlier)]
    if len(last) < 2 or len(earlier) < 2:
        return {"trend": "non-finite", "rel_change": None, "noise": None, "span": back * window}
    change = float(last.mean() - earlier.mean())
    noise = math.sqrt(float(last.var()) / len(last) + float(earlier.var()) / len(earlier))
    scale = max(abs(float(last.mean())), SCALE_FLOOR)
    threshold = max(tolerance * scale, NOISE_SIGMAS * noise)
    trend = "rising" if change > threshold else "falling" if change < -threshold else "flat"
    return {"trend": trend, "rel_change": change / scale, "noise": noise / scale, "span": back * window}


def convergence_diagnostics(curve, window=AVERAGE_LAST, tolerance=TOLERANCE):
    """Is the estimate of this 1-D bound curve trustworthy?

    status: 'converged' (the smoothed bound is flat over the last TREND_SPAN windows),
    'rising' (still improving: train longer or raise lr; or, if a held-out bound says the
    critic overfits, memorising: stop earlier or lower lr), 'diverging' (falling, or
    non-finite steps in the last window: lower lr), 'too_short' (fewer than two windows).
    """
    window = max(1, min(window, len(curve) // 2)) if len(curve) >= 2 else 1
    trend = window_trend(curve, window, tolerance)
    nonfinite_last = int((~torch.isfinite(curve[-window:])).sum()) if len(curve) else 0
    if trend["trend"] in ("falling", "non-finite") or nonfinite_last:
        status = "diverging"
    elif trend["trend"] == "rising":
        status = "rising"
    elif trend["trend"] == "short":
        status = "too_short"
    else:
        status = "converged"
    window_means = [float(chunk[torch.isfinite(chunk)].mean()) if torch.isfinite(chunk).any() else None
                    for chunk in torch.split(curve[len(curve) % window:], window)][-(TREND_SPAN + 1):] if len(curve) else []
    return {"status": status, "trend": trend["trend"], "rel_change": trend["rel_change"],
            "noise": trend["noise"], "span": trend["span"], "window": window, "window_means": window_means,
            "nonfinite_last_window": nonfinite_last}


def heldout_diagnostics(estimate, heldout_curve, heldout_noise=0.0):
    """Does the critic generalise? A training-set estimate well above the held-out bound
    (beyond OVERFIT_GAP and NOISE_SIGMAS standard errors of the held-out bound) means it
    memorises the sample rather than measuring the dependence: more iterations or a larger
    lr then inflate the estimate instead of refining it."""
    if not heldout_curve:
        return {"heldout_estimate": None, "heldout_noise": None, "heldout_gap": None, "heldout_peak": None,
                "overfitting": None}
    heldout = heldout_curve[-1][1]
    peak_iteration, peak = max(heldout_curve, key=lambda point: point[1])
    gap = estimate - heldout
    threshold = max(OVERFIT_GAP * abs(estimate), SCALE_FLOOR, NOISE_SIGMAS * heldout_noise)
    return {"heldout_estimate": heldout, "heldout_noise": heldout_noise, "heldout_gap": gap,
            "heldout_peak": [peak_iteration, peak], "overfitting": bool(gap > threshold)}
