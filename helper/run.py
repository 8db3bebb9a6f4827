"""The training run folder, one home (SPEC 2): run names, where runs and their TensorBoard
events live, checkpoint names, and both halves of the checkpoint schema (what a run saves,
and how a resumed run is restored from it).

    save/model/<run name>/          ckpt_epoch_{E}.pth, {model}_best.pth, {model}_last.pth,
                                    args.json, metrics.csv, and the results files of
                                    transfer.py and mine.py (helper/results.py)
    save/tensorboard/<run name>/    training curves, transfer and MINE scalars
"""
import json
import re
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from dataset import dataset_tag
from util import UserError, atomic_save, load_checkpoint, read_csv, rng_state, set_rng_state, write_csv, write_json

SAVE_ROOT = Path("save")
CKPT_PATTERN = re.compile(r"ckpt_epoch_(\d+)\.pth$")


# --------------------------------------------------------------------------- names and folders

def vanilla_run_name(model, dataset, lr, trial, note):
    return f"{model}_{dataset_tag(dataset)}_lr_{lr}_trial_{trial}_{note}"


def ctc_run_name(model, dataset, alpha, beta, note):
    return f"{model}_{dataset_tag(dataset)}_a:{alpha}_b:{beta}_{note}"


def model_folder(run_name):
    return SAVE_ROOT / "model" / run_name


def resolve_run_folder(ckpt_path):
    """--ckpt_path: a folder name under save/model/, or a path to an existing folder."""
    for candidate in (SAVE_ROOT / "model" / ckpt_path, Path(ckpt_path)):
        if candidate.is_dir():
            return candidate
    raise UserError(f"run folder '{ckpt_path}' not found (looked in {SAVE_ROOT / 'model'}/ and as a path)")


def tensorboard_folder(run_folder):
    """TensorBoard folder of a run: save/tensorboard/<run name>/ beside save/model/."""
    run_folder = Path(run_folder).resolve()
    if run_folder.parent.name == "model":
        return run_folder.parent.parent / "tensorboard" / run_folder.name
    return run_folder / "tensorboard"


def tensorboard_writer(run_folder, purge_step=None):
    """The run's TensorBoard writer; `purge_step` hides events at or after that step left by an interrupted run."""
    return SummaryWriter(log_dir=str(tensorboard_folder(run_folder)), purge_step=purge_step)


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


# --------------------------------------------------------------------------- a training run on disk

class TrainingRun:
    """The on-disk side of a training run: folder, args.json, metrics.csv, TensorBoard,
    checkpoints and resuming.

    `ckpt_epoch_{E}.pth` and `{model}_best.pth` hold what analysis needs (epoch, model,
    accuracy); `{model}_last.pth` is rewritten every epoch with everything a resumed run
    needs (optimizer, RNG, method and step state), so a killed run loses at most one epoch.
    """

    def __init__(self, folder, model_name, args, may_change, resume=False, writes=True):
        """Checks the folder and reads the resume state; nothing is written before `open()`,
        so a run that fails while loading its data leaves no folder behind. `may_change`:
        the settings a resumed run may change (how it executes, not what it computes)."""
        self.folder = Path(folder)
        self.model_name = model_name
        self.args = args
        self.last_path = self.folder / f"{model_name}_last.pth"
        self.best_path = self.folder / f"{model_name}_best.pth"
        self.metrics_path = self.folder / "metrics.csv"
        self.args_path = self.folder / "args.json"
        self.best_acc = 0.0  # best test top-1 so far; restore() reads a resumed run's
        self.resume_state = self._check_folder(resume)
        if self.resume_state:
            self._check_resumed_settings(args, may_change)
        # Under multi-process training only one process writes; the others only need
        # the resume state.
        self.writes = writes

    @property
    def start_epoch(self):
        return self.resume_state["epoch"] + 1 if self.resume_state else 1

    @property
    def trained_epochs(self):
        return self.start_epoch - 1

    @property
    def finished(self):
        """A resumed run that has already trained all its epochs."""
        return bool(self.resume_state) and self.start_epoch > self.args["epochs"]

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

    def _check_resumed_settings(self, args, may_change):
        """Refuse to resume with flags that change what the run computes (a new learning rate
        would silently bend the run half-way). `may_change` flags may change, and --epochs may,
        to extend a run, with a notice: the schedule's remaining epochs follow the new length."""
        if not self.args_path.is_file():
            return
        started = json.loads(self.args_path.read_text())
        changed = {key: f"--{key} {started[key]} (now {args[key]})" for key in started
                   if key in args and key not in may_change and json.loads(json.dumps(args[key])) != started[key]}
        if changed.keys() - {"epochs"}:
            raise UserError(f"--resume: {self.folder} was started with other settings: {', '.join(changed.values())}; "
                            f"resume with the original flags, or start a new run with another --note/--trial")
        if changed and args["epochs"] > self.resume_state["epoch"]:
            print(f"resuming with {changed['epochs']}: the learning rate of the epochs still to run follows "
                  f"the new length", flush=True)

    def open(self):
        """Start writing: the folder, args.json, the metrics so far and TensorBoard."""
        if not self.writes:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.metrics = [row for row in read_csv(self.metrics_path) if int(row["epoch"]) < self.start_epoch]
        write_json(self.args_path, self.args)
        # Events from the first epoch this attempt runs on belong to an interrupted one (a
        # resumed run's, or, for a fresh start, one killed before it saved anything).
        self.writer = tensorboard_writer(self.folder, purge_step=self.start_epoch)

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

    # The checkpoint schema: save() writes it, restore() reads it back.

    def save(self, epoch, model, accuracy, save_freq, step, method):
        """After an epoch's test: ckpt_epoch_{E}.pth every `save_freq` epochs, {model}_best.pth
        when `accuracy` beats the best so far, and always {model}_last.pth with the resume state."""
        is_best = accuracy > self.best_acc
        self.best_acc = max(self.best_acc, accuracy)
        if not self.writes:
            return
        base = {"epoch": epoch, "model": model.state_dict(), "accuracy": accuracy, "arch": self.model_name}
        if epoch % save_freq == 0:
            print("==> Saving...")
            atomic_save(base, checkpoint_path(self.folder, epoch))
        if is_best:
            print("saving the best model!")
            atomic_save({**base, "best_acc": accuracy}, self.best_path)
        # Written last: if the run dies before this, resuming redoes the epoch and
        # rewrites the files above with the same content.
        atomic_save({**base, "optimizer": step.optimizer.state_dict(), "best_acc": self.best_acc,
                     "method": method.state_dict(), "step": step.state_dict(), "rng": rng_state()}, self.last_path)

    def restore(self, model, step, method):
        """Put a resumed run back where its last epoch left it: model, optimizer, step and
        method state, best accuracy, RNG. A fresh run has nothing to restore."""
        state = self.resume_state
        if not state:
            return
        model.load_model(state)
        step.optimizer.load_state_dict(state["optimizer"])
        step.load_state_dict(state.get("step", {}))
        method.load_state_dict(state.get("method", {}))
        self.best_acc = state["best_acc"]
        set_rng_state(state["rng"])
        print(f"==> resuming {self.folder} after epoch {state['epoch']}")

    def close(self):
        if self.writes:
            self.writer.close()
