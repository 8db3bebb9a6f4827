"""The bottom layer: small helpers every part of the project shares, importing nothing from it.

Errors and the entry scripts' main wrapper, argparse helpers that know no script,
seeding and RNG state, device choice, atomic file writes, CSV/JSON files, file locks
and safe checkpoint loading.
"""
import argparse
import contextlib
import csv
import fcntl
import io
import json
import os
import random
import stat
import sys
import tempfile
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


# --------------------------------------------------------------------------- command lines

class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: <what is wrong> (see --help)`, exit code 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


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


# --------------------------------------------------------------------------- files

def atomic_write(path, write):
    """Write through a temp file in the same folder, then rename over `path`.

    A reader (or a run killed half-way) sees either the old file or the new one,
    never a truncated mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); the renamed file gets the mode a plain write
        # would give it, so that checkpoints and results stay readable by whoever could read them.
        os.fchmod(fd, _file_mode(path))
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _file_mode(path):
    """The existing file's permissions, or those of a new file under this process's umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_UMASK


# The umask can only be read by setting it; done once here, not per file beside running threads.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_save(obj, path):
    """torch.save, atomically."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(path, text):
    atomic_write(path, lambda handle: handle.write(text.encode()))


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


@contextlib.contextmanager
def locked(path):
    """An exclusive lock beside `path`, so that processes sharing one file (shards of a
    run writing one results file) never drop each other's changes."""
    lock_path = Path(path).with_name(f".{Path(path).name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
