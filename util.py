"""Small helpers shared by every entry script.

Meters and accuracy, the learning-rate schedules of the paper, seeding and device
choice, run-folder naming, atomic file writes, checkpoint loading/discovery,
JSON-lines result files, per-checkpoint sharding and the TensorBoard writer.
Nothing here parses command lines or knows about a particular algorithm.
"""
import argparse
import contextlib
import csv
import fcntl
import functools
import io
import json
import math
import os
import random
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


# --------------------------------------------------------------------------- errors

class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2, no traceback."""


def run_main(main):
    """Call `main()`; turn a UserError into one clear line and a non-zero exit, and Ctrl-C
    into one line too: every file is written atomically, so an interrupt leaves only
    whole checkpoints and whole result rows, and the same command carries on."""
    try:
        return main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: saved checkpoints and result rows are complete; rerun the command to continue "
              "(training: with --resume, once a checkpoint was saved)", file=sys.stderr, flush=True)
        sys.exit(130)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: <what is wrong> (see --help)`, exit code 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


# Titles of the argument groups whose flags say how a run executes, not what it computes:
# a resumed run may change them (TrainingRun); every other flag must stay as it started.
EXECUTION_TITLE = "execution (may change when a run is resumed)"
SPEED_TITLE = "speed (none of these changes what is computed beyond float noise)"


def add_training_arguments(parser, epochs, note):
    """Flags shared by train_vanilla.py and train_ctc.py (SPEC 1 and 5 defaults)."""
    add = parser.add_argument
    execution = parser.add_argument_group(EXECUTION_TITLE)
    execution.add_argument("--print_freq", type=positive(), default=100, help="print every N steps")
    execution.add_argument("--save_freq", type=positive(), default=40, help="write ckpt_epoch_E.pth every N epochs")
    execution.add_argument("--num_workers", type=int, default=8, help="DataLoader worker processes")
    execution.add_argument("--data_root", default="./data")
    execution.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    execution.add_argument("--resume", action="store_true",
                           help="continue the run from {model}_last.pth in its folder")
    add("--batch_size", type=positive(), default=64)
    add("--epochs", type=positive(), default=epochs)
    add("--learning_rate", type=positive(float), default=0.05)
    add("--weight_decay", type=float, default=5e-4)
    add("--momentum", type=float, default=0.9)
    add("--model", default="resnext32_16x4d", type=model_name)
    add("--dataset", default="cifar100", help="cifar100, cifar10, cinic10, stl10 or folder:<path>")
    add("--aug", default="vanilla", choices=["vanilla", "none", "mine", "auto"],
        help="vanilla/none: crop+flip; mine: no augmentation; auto: AutoAugment + cutout")
    add("--note", "--notes", dest="note", default=note, help="suffix of the run folder name")
    add("--seed", type=int, default=0)
    speed = parser.add_argument_group(SPEED_TITLE)
    speed.add_argument("--loader", default="auto", choices=["auto", "gpu", "torch"],
                       help="gpu: data set kept on the device, augmented there; auto: gpu on CUDA when it fits")
    speed.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"], help="autocast precision")
    speed.add_argument("--channels_last", action="store_true", help="NHWC memory format for convolutions")
    speed.add_argument("--cuda_graph", action="store_true",
                       help="replay full-size train steps from a captured CUDA graph")
    speed.add_argument("--cudnn_benchmark", action=argparse.BooleanOptionalAction, default=True,
                       help="cuDNN autotuning (CUDA)")
    speed.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                       help="TF32 matmuls and convolutions on Ampere+ GPUs, as in the paper's environment")


def model_name(text):
    """argparse type of --model: a typo is refused before any file is read or written."""
    from models import unknown_model  # models imports this module, so not at the top
    if message := unknown_model(text):
        raise argparse.ArgumentTypeError(message)
    return text


def positive(kind=int):
    """argparse type: a strictly positive number ('1e+4' accepted for ints)."""
    def parse(text):
        try:
            value = float(text) if kind is float else int(float(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


# --------------------------------------------------------------------------- meters

class AverageMeter:
    """Running average of a scalar, weighted by batch size."""

    def __init__(self):
        self.val = self.avg = self.sum = 0.0
        self.count = 0

    def update(self, val, n=1):
        self.val = float(val)
        self.sum += float(val) * n
        self.count += n
        self.avg = self.sum / self.count


def accuracy(output, target, topk=(1,)):
    """Top-k accuracies in percent (floats) of logits `output` against `target`."""
    with torch.no_grad():
        maxk = min(max(topk), output.shape[1])
        pred = output.topk(maxk, dim=1).indices
        correct = pred.eq(target.view(-1, 1))
        return [correct[:, :min(k, maxk)].any(dim=1).float().sum().item() * 100.0 / target.shape[0]
                for k in topk]


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


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


# --------------------------------------------------------------------------- seeding, device

def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state():
    """Every RNG the project draws from, in a form `torch.load(weights_only=True)` accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(_as_tuple(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value):
    # random.setstate needs tuples all the way down; a round trip through a checkpoint
    # may have turned them into lists.
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def pick_device(name="auto"):
    """'auto' means the GPU when there is one; an explicit unavailable device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but this machine has no usable CUDA GPU")
    return device


# --------------------------------------------------------------------------- run folders

SAVE_ROOT = Path("save")


def vanilla_run_name(model, dataset, lr, trial, note):
    return f"{model}_{dataset_tag(dataset)}_lr_{lr}_trial_{trial}_{note}"


def ctc_run_name(model, dataset, alpha, beta, note):
    return f"{model}_{dataset_tag(dataset)}_a:{alpha}_b:{beta}_{note}"


def check_bf16(device, wanted):
    """One clear line instead of a silent float32 run: CUDA autocast falls back to float32
    with only a warning on GPUs without bf16 (before Ampere), and results would say bf16."""
    device = torch.device(device)
    if wanted and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"bf16 was asked for, but {torch.cuda.get_device_name(device)} has no bf16 support; "
                        f"run without --amp (or, for training, with --amp fp16)")


def dataset_tag(dataset):
    """A data set name usable in a folder name ('folder:/a/b' -> 'folder-b')."""
    if dataset.startswith("folder:"):
        return "folder-" + Path(dataset.split(":", 1)[1]).name
    return dataset


def model_folder(run_name):
    return SAVE_ROOT / "model" / run_name


def tensorboard_folder(run_folder):
    """TensorBoard folder of a run: save/tensorboard/<run name>/ beside save/model/."""
    run_folder = Path(run_folder).resolve()
    if run_folder.parent.name == "model":
        return run_folder.parent.parent / "tensorboard" / run_folder.name
    return run_folder / "tensorboard"


def resolve_run_folder(ckpt_path):
    """--ckpt_path: a folder name under save/model/, or a path to an existing folder."""
    for candidate in (SAVE_ROOT / "model" / ckpt_path, Path(ckpt_path)):
        if candidate.is_dir():
            return candidate
    raise UserError(f"run folder '{ckpt_path}' not found (looked in {SAVE_ROOT / 'model'}/ and as a path)")


def make_writer(log_dir, purge_step=None):
    """TensorBoard writer; `purge_step` hides events at or after that step left by an interrupted run."""
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


# --------------------------------------------------------------------------- atomic writes

def _atomic_write(path, write):
    """Write through a temp file in the same folder, then rename over `path`.

    A reader (or a run killed half-way) sees either the old file or the new one,
    never a truncated mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj, path):
    """torch.save, atomically."""
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(path, text):
    _atomic_write(path, lambda handle: handle.write(text.encode()))


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path, rows, fields):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def read_csv(path):
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- results (JSON lines)

def read_results(path, damaged="refuse"):
    """Rows of a JSON-lines results file (one JSON object per line).

    A row cut short at the end of the file (a copy or a disk that gave out) is reported
    and skipped, and the next rewrite repairs the file. Any other line that is not a row
    is refused by default: the callers that write rewrite the whole file and would drop
    it (a --results pointing at some other file would be wiped). damaged="warn" reports
    and skips every such line, for readers that write nothing.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"results file {path} is a folder; pass a file name")
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(errors="replace").splitlines()
    last = max((number for number, line in enumerate(lines, 1) if line.strip()), default=0)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        cut_short = row is None and number == last and line.lstrip().startswith("{")
        if isinstance(row, dict):
            rows.append(row)
        elif damaged == "warn" or cut_short:
            print(f"warning: {path}:{number} is not a complete result row; ignoring it", file=sys.stderr)
        else:
            raise UserError(f"{path}:{number} is not a result row (one JSON object per line), so the file is not "
                            f"rewritten; repair or move it, or pass --results for another file")
    return rows


@dataclass
class Selection:
    """The checkpoints one transfer.py or mine.py call works on."""
    run_folder: Path
    run: str  # the folder's own name, however --ckpt_path spelled it ('.', 'a/..'): rows record it
    checkpoints: list  # [(j, epoch, path)] of this shard, j numbering every checkpoint of the run from 1
    epochs: set  # every selected epoch, all shards together: the rows a --force rerun replaces


def selected_checkpoints(ckpt_path, start_epoch, skip, shard=None):
    """The checkpoints --start_epoch/--skip select in the run folder, then the share of
    `shard` ('i/n') if given; j numbers all of them from 1, so every shard prints the same j."""
    run_folder = resolve_run_folder(ckpt_path)
    checkpoints = [(j, epoch, path) for j, (epoch, path) in enumerate(find_checkpoints(run_folder, start_epoch, skip), 1)]
    return Selection(run_folder, run_folder.resolve().name,
                     take_shard(checkpoints, parse_shard(shard)) if shard else checkpoints,
                     {epoch for _, epoch, _ in checkpoints})


def checkpoints_to_do(selection, results_path, settings, force=False, match=None, predating=None):
    """The (j, epoch, path) checkpoints of `selection` whose epoch is not yet in the results
    file (rows selected by `match`, e.g. mode and data set), announcing the ones skipped,
    or that there is nothing to do.

    One file never mixes settings or runs. A row made with other `settings` is refused
    unless `force` redoes its checkpoint (in this call or another shard of it), so that its
    new row replaces it. A file outside the run folder that holds another run's rows is
    always refused; in the run folder itself such rows mean the folder was renamed or
    copied, and count as other settings. `predating` maps a setting added later to the
    value rows written before it existed had. The file is checked to be writable before
    any work starts.
    """
    match, predating = match or {}, predating or {}
    every_row = [{**predating, **row} for row in read_results(results_path)]
    own_file = Path(results_path).absolute().parent == selection.run_folder.absolute()
    if not own_file:
        others = sorted({str(row.get("run")) for row in every_row if row.get("run") != selection.run})
        if others:
            raise UserError(f"{results_path} holds results of run {others[0]}, not of {selection.run}: a results "
                            f"file belongs to one run; pass --results for another file")
    rows = [row for row in every_row if all(row.get(k) == v for k, v in match.items())]
    redone = selection.epochs if force else set()
    for row in rows:
        differing = [f"{key} {row.get(key)} (now {value})" for key, value in settings.items() if row.get(key) != value]
        if differing and row.get("epoch") not in redone:
            advice = ("--force replaces only the rows of the checkpoints --start_epoch/--skip select, and this one "
                      "is not among them" if force else "pass --force to replace its rows")
            raise UserError(f"{results_path} holds a row for epoch {row.get('epoch')} made with other settings: "
                            f"{', '.join(differing)}; {advice}, or --results for a new file")
    done = set() if force else {row.get("epoch") for row in rows}
    checkpoints = selection.checkpoints
    todo = [checkpoint for checkpoint in checkpoints if checkpoint[1] not in done]
    if not todo:
        print(f"nothing to do: every selected checkpoint is in {results_path} (--force to redo)")
    elif len(todo) < len(checkpoints):
        skipped = [epoch for _, epoch, _ in checkpoints if epoch in done]
        print(f"skipping epoch(s) {', '.join(map(str, skipped))}: already in {results_path} (--force to redo)")
    if todo:
        check_writable(results_path)
    return todo


def check_writable(path):
    """Refuse in one line, before any work and without creating anything, a results file
    that could not be written: its folder, or the nearest one that exists, must take a
    new file (the atomic write puts a temporary file beside the results)."""
    folder = Path(path).absolute().parent
    while not folder.exists():
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file, not a folder")
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise UserError(f"cannot write results to {path}: {err.strerror or err}") from None


@contextlib.contextmanager
def locked(path):
    """An exclusive lock beside `path`, so processes sharing one results file (shards of a
    run) never drop each other's rows."""
    lock_path = Path(path).with_name(f".{Path(path).name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _update_results(path, update):
    """Rewrite a results file as `update(rows)`, atomically and under the file's lock."""
    try:
        with locked(path):
            rows = update(read_results(path))
            atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    except OSError as err:  # a full disk, a folder made read-only while the job ran
        raise UserError(f"cannot write results to {path}: {err.strerror or err}") from None


def store_result(path, row, keys=("epoch",)):
    """Put `row` into a results file, replacing an older row with the same `keys` (a forced
    rerun); rows stay sorted by those keys."""
    def key(r):  # numbers sort as numbers, anything else (or a missing key) as text
        return tuple((0, r[k], "") if isinstance(r.get(k), (int, float)) else (1, 0, str(r.get(k))) for k in keys)
    _update_results(path, lambda rows: sorted([r for r in rows if key(r) != key(row)] + [row], key=key))


def append_result(path, row):
    """Add one row (no key replaced)."""
    _update_results(path, lambda rows: rows + [row])


# --------------------------------------------------------------------------- checkpoints

CKPT_PATTERN = re.compile(r"ckpt_epoch_(\d+)\.pth$")


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint safely (weights_only); any failure becomes one clear UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, random bytes: all the same to the user
        # The first sentence names the fault; PyTorch's advice after it is long and generic.
        reason = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        if len(reason) > 200:
            reason = reason[:200].rsplit(" ", 1)[0] + " ..."
        raise UserError(f"checkpoint {path} cannot be read (truncated, corrupt or not a weights-only "
                        f"PyTorch file): {reason}") from None


def checkpoint_path(folder, epoch):
    return Path(folder) / f"ckpt_epoch_{epoch}.pth"


def find_checkpoints(folder, start_epoch, skip, last_epoch=500):
    """[(epoch, path)] for epochs start, start+skip, ... <= last_epoch that exist, in order."""
    if skip <= 0 or start_epoch < 0:
        raise UserError(f"--start_epoch must be >= 0 and --skip > 0 (got {start_epoch}, {skip})")
    found = [(epoch, checkpoint_path(folder, epoch)) for epoch in range(start_epoch, last_epoch + 1, skip)]
    found = [(epoch, path) for epoch, path in found if path.is_file()]
    if not found:
        present = sorted(int(m.group(1)) for p in Path(folder).iterdir() if (m := CKPT_PATTERN.search(p.name)))
        hint = f"epochs present: {present[:10]}{' ...' if len(present) > 10 else ''}" if present else "it holds no ckpt_epoch_*.pth"
        raise UserError(f"no checkpoint in {folder} matches --start_epoch {start_epoch} --skip {skip} ({hint})")
    return found


def parse_shard(text):
    """'i/n' -> (i, n) with 0 <= i < n."""
    match = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise UserError(f"--shard must look like i/n with 0 <= i < n, got '{text}'")
    return int(match.group(1)), int(match.group(2))


def take_shard(items, shard):
    """Every n-th item starting at i: shards 0/n .. n-1/n cover the list exactly once."""
    index, count = shard
    return items[index::count]


# --------------------------------------------------------------------------- training runs

@functools.cache
def execution_flags():
    """The options a resumed run may change: those add_training_arguments puts in its
    execution and speed groups."""
    parser = argparse.ArgumentParser()
    add_training_arguments(parser, epochs=1, note="")
    return frozenset(action.dest for group in parser._action_groups if group.title in (EXECUTION_TITLE, SPEED_TITLE)
                     for action in group._group_actions)


class TrainingRun:
    """The on-disk side of a training run: folder, args.json, metrics.csv, TensorBoard,
    checkpoints (SPEC 2) and resuming.

    `ckpt_epoch_{E}.pth` and `{model}_best.pth` hold what analysis needs (epoch, model,
    accuracy); `{model}_last.pth` is rewritten every epoch with everything a resumed run
    needs (optimizer, RNG, method state), so a killed run loses at most one epoch.
    """

    def __init__(self, folder, model_name, args, resume=False, writes=True):
        """Checks the folder and reads the resume state; nothing is written before `open()`,
        so a run that fails while loading its data leaves no folder behind."""
        self.folder = Path(folder)
        self.model_name = model_name
        self.args = args
        self.last_path = self.folder / f"{model_name}_last.pth"
        self.best_path = self.folder / f"{model_name}_best.pth"
        self.metrics_path = self.folder / "metrics.csv"
        self.args_path = self.folder / "args.json"
        self.resume_state = self._check_folder(resume)
        if self.resume_state:
            self._check_resumed_settings(args)
        # Under multi-process training only one process writes; the others only need
        # the resume state.
        self.writes = writes

    @property
    def finished(self):
        """A resumed run that has already trained all its epochs."""
        return bool(self.resume_state) and self.start_epoch > self.args["epochs"]

    def open(self):
        """Start writing: the folder, args.json, the metrics so far and TensorBoard."""
        if not self.writes:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.metrics = [row for row in read_csv(self.metrics_path) if int(row["epoch"]) < self.start_epoch]
        write_json(self.args_path, self.args)
        # Events from the first epoch this attempt runs on belong to an interrupted one (a
        # resumed run's, or, for a fresh start, one killed before it saved anything).
        self.writer = make_writer(tensorboard_folder(self.folder), purge_step=self.start_epoch)

    def _check_folder(self, resume):
        if resume:
            if not self.last_path.is_file():
                raise UserError(f"--resume: nothing to resume from, {self.last_path} does not exist")
            state = load_checkpoint(self.last_path)
            if not isinstance(state, dict) or "optimizer" not in state or "epoch" not in state:
                raise UserError(f"--resume: {self.last_path} is not a resumable checkpoint of this project")
            return state
        if self.folder.is_dir() and any(self.folder.glob("*.pth")):
            raise UserError(f"{self.folder} already holds checkpoints; pass --resume to continue that run, "
                            f"or change --note/--trial to start a new one")
        return None

    def _check_resumed_settings(self, args):
        """Refuse to resume with flags that change what the run computes (a new learning rate
        would silently bend the run half-way). Execution flags may change, and --epochs may,
        to extend a run, with a notice: the schedule's remaining epochs follow the new length."""
        if not self.args_path.is_file():
            return
        started = json.loads(self.args_path.read_text())
        changed = {key: f"--{key} {started[key]} (now {args[key]})" for key in started
                   if key in args and key not in execution_flags() and json.loads(json.dumps(args[key])) != started[key]}
        if changed.keys() - {"epochs"}:
            raise UserError(f"--resume: {self.folder} was started with other settings: {', '.join(changed.values())}; "
                            f"resume with the original flags, or start a new run with another --note/--trial")
        if changed and args["epochs"] > self.resume_state["epoch"]:
            print(f"resuming with {changed['epochs']}: the learning rate of the epochs still to run follows "
                  f"the new length", flush=True)

    @property
    def start_epoch(self):
        return self.resume_state["epoch"] + 1 if self.resume_state else 1

    @property
    def trained_epochs(self):
        return self.start_epoch - 1

    def log_epoch(self, epoch, values):
        """One metrics.csv row and one TensorBoard point per value ('train_loss' -> 'train/loss')."""
        if not self.writes:
            return
        row = {"epoch": epoch, **values}
        self.metrics.append(row)
        fields = list(dict.fromkeys(key for r in self.metrics for key in r))
        write_csv(self.metrics_path, self.metrics, fields)
        for name, value in values.items():
            tag = name.replace("_", "/", 1) if name.split("_")[0] in ("train", "test") else name
            self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def save(self, epoch, model_state, accuracy, save_freq, is_best, resume_extra):
        if not self.writes:
            return
        base = {"epoch": epoch, "model": model_state, "accuracy": accuracy, "arch": self.model_name}
        if epoch % save_freq == 0:
            print("==> Saving...")
            atomic_save(base, checkpoint_path(self.folder, epoch))
        if is_best:
            print("saving the best model!")
            atomic_save({**base, "best_acc": accuracy}, self.best_path)
        # Written last: if the run dies before this, resuming redoes the epoch and
        # rewrites the files above with the same content.
        atomic_save({**base, **resume_extra, "rng": rng_state()}, self.last_path)

    def close(self):
        if self.writes:
            self.writer.close()
