"""The results files of transfer.py and mine.py, one home: which checkpoints a call works on
(--start_epoch/--skip, --shard), which of them are already done, whether a rerun may add
to or replace the rows there, and reading and storing rows.

A results file is JSON lines, one row per checkpoint (plus the settings that made it),
in the run folder by default. One file never mixes settings or runs; shards of one call
share it under a file lock; every rewrite is atomic.
"""
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from helper.run import find_checkpoints, resolve_run_folder
from util import UserError, atomic_write_text, locked, positive


# --------------------------------------------------------------------------- selection

def add_selection_arguments(parser, verb, required=True):
    """The flags transfer.py, mine.py and geometry.py share to choose their checkpoints, device and
    results file; `verb` says what the script does to a checkpoint, for the help texts."""
    add = parser.add_argument
    add("--ckpt_path", required=required, default=None, help="run folder: a name under save/model/ or a path")
    add("--start_epoch", type=int, default=2, help=f"first checkpoint epoch to {verb}")
    add("--skip", type=positive(), default=2, help=f"{verb} epochs start_epoch, start_epoch+skip, ...")
    add("--data_root", default="./data")
    add("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    add("--shard", default=None,
        help=f"i/n with 0 <= i < n: {verb} every n-th checkpoint starting at the i-th (counting from 0)")
    add("--results", default=None, help="JSON-lines results file (default: in the run folder)")
    add("--force", action="store_true", help=f"re-{verb} checkpoints already in the results file")


@dataclass
class Selection:
    """The checkpoints one transfer.py or mine.py call works on."""
    run_folder: Path
    run: str  # the folder's own name, however --ckpt_path spelled it ('.', 'a/..'): rows record it
    checkpoints: list  # [(j, epoch, path)] of this shard, j numbering every checkpoint of the run from 1
    epochs: set  # every selected epoch, all shards together: the rows a --force rerun replaces


def calibrate_or_measure(args, calibrate, measure):
    """The main of a per-checkpoint script with a --calibrate mode (mine.py, geometry.py): on the
    chosen device, the calibration when asked for, else the selected checkpoints."""
    from helper.precision import measurement_device
    device = measurement_device(args.device, args.amp)
    if args.calibrate:
        return calibrate(args, device)
    if not args.ckpt_path:
        raise UserError("--ckpt_path is required (a run folder under save/model/ or a path), unless --calibrate is given")
    return measure(args, device)


def selected_checkpoints(ckpt_path, start_epoch, skip, shard=None):
    """The checkpoints --start_epoch/--skip select in the run folder, then the share of
    `shard` ('i/n') if given; j numbers all of them from 1, so every shard prints the same j."""
    run_folder = resolve_run_folder(ckpt_path)
    checkpoints = [(j, epoch, path) for j, (epoch, path) in enumerate(find_checkpoints(run_folder, start_epoch, skip), 1)]
    return Selection(run_folder, run_folder.resolve().name,
                     take_shard(checkpoints, parse_shard(shard)) if shard else checkpoints,
                     {epoch for _, epoch, _ in checkpoints})


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


# --------------------------------------------------------------------------- rows

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
