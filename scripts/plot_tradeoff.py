"""The paper's temporal trade-off analysis: figure and table from a run's results files.

    python scripts/plot_tradeoff.py RUN_FOLDER [RUN_FOLDER ...] [--out PREFIX]
                                    [--protocol P] [--target T]

Reads only what training, transfer.py, mine.py and geometry.py leave in each run folder
(metrics.csv, transfer_{target}_{protocol}.jsonl, mine_{mode}_{dataset}.jsonl,
geometry_{dataset}.jsonl) and draws, against training epoch, source test accuracy, transfer
accuracy, every MINE series found and, per data set geometry.py measured, NC1, the effective
rank and I(X;T_s) with I(T_s;Y) at one noise level; one line per run, with each run's
best-transfer epoch marked. Writes PREFIX.png and PREFIX.md: a per-run table (best source
accuracy, best transfer accuracy, transfer at the last evaluated epoch and the drop between
them) and the checkpoints whose MINE I(X;T) reads below their I(T;Y) on the same images.
T is computed from X, so I(X;T) >= I(T;Y) must hold: such an I(X;T) is a loose lower bound,
not compression. (geometry.py's I(X;T_s) and I(T_s;Y) keep that order by construction.)
"""
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
matplotlib.use("Agg")  # files only: no display on the machines this runs on
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

# Run as `python scripts/plot_tradeoff.py` from the repository root: util lives there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import util  # noqa: E402
from helper.geometry.report import information_at  # noqa: E402
from helper.mine.report import NAMES, parse_results_file_name  # noqa: E402
from helper.results import read_results  # noqa: E402
from helper.run import resolve_run_folder  # noqa: E402

# The protocol is the file name's last part; it is matched by name because both the
# protocol (train_bn) and a target tag (folder-my_set) may contain underscores. Results of
# transfer.py --amp count as a protocol of their own, e.g. adabn_amp.
TRANSFER_FILE = re.compile(r"transfer_(?P<target>.+)_(?P<protocol>(?:train_bn|adabn|frozen)(?:_amp)?)\.jsonl")
DEFAULT_PROTOCOL = "train_bn"  # the reference's protocol: the one the paper's numbers mean
GEOMETRY_FILE = re.compile(r"geometry_(?P<dataset>.+)\.jsonl")
# The noise level the figure shows (geometry.py's middle default): a level where I(X;T_s) of a
# 10,000-image sample is far from its log N ceiling for most features (helper/geometry/information.py).
SHOWN_NOISE = 0.5


@dataclass
class Run:
    """One run folder's series, each {epoch: value} in epoch order."""
    name: str
    test_top1: dict = field(default_factory=dict)  # percent
    transfer: dict = field(default_factory=dict)   # (target, protocol) -> series of fractions
    mine: dict = field(default_factory=dict)       # (mode, dataset) -> series in nats
    geometry: dict = field(default_factory=dict)   # (quantity, dataset) -> series: nc1, effective_rank, i_xt, i_ty
    noise: dict = field(default_factory=dict)      # dataset -> the noise level of its i_xt and i_ty series


# --------------------------------------------------------------------------- load

def number(value):
    """A finite float, or None for empty cells, damaged values and NaN/inf
    (a diverged estimate is a gap in the line, not a point)."""
    if isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def series(rows, key):
    """{epoch: rows[key]} in epoch order; a repeated epoch (a forced re-run) keeps its last row."""
    values = {}
    for row in rows:
        epoch, value = number(row.get("epoch")), number(row.get(key))
        if epoch is not None and value is not None:
            values[int(epoch)] = value
    return dict(sorted(values.items()))


def read(path):
    """A results file's rows; a damaged line is reported and skipped (plotting writes nothing back)."""
    return read_results(path, damaged="warn")


def load_run(folder, name):
    run = Run(name)
    metrics = folder / "metrics.csv"
    found = metrics.is_file()
    run.test_top1 = series(util.read_csv(metrics), "test_top1")
    for path in sorted(folder.glob("*.jsonl")):
        if match := TRANSFER_FILE.fullmatch(path.name):
            run.transfer[match["target"], match["protocol"]] = series(read(path), "best_acc")
        elif parsed := parse_results_file_name(path.name):
            mode, dataset, protocol = parsed  # each MINE protocol is a series of its own
            run.mine[mode, dataset if protocol == "reference" else f"{dataset} ({protocol})"] = \
                series(read(path), "estimate")
        elif match := GEOMETRY_FILE.fullmatch(path.name):
            load_geometry(run, match["dataset"], read(path))
        else:
            continue
        found = True
    if not found:
        raise util.UserError(f"{folder} holds no metrics.csv, transfer_*.jsonl, mine_*.jsonl or geometry_*.jsonl; "
                             f"nothing to plot")
    return run


def load_geometry(run, dataset, rows):
    """NC1, effective rank, and I(X;T_s), I(T_s;Y) at SHOWN_NOISE (or the rows' first level)."""
    for key in ("nc1", "effective_rank"):
        run.geometry[key, dataset] = series(rows, key)
    levels = [level.get("noise") for row in rows for level in row.get("information", [])]
    if not levels:
        return
    noise = SHOWN_NOISE if SHOWN_NOISE in levels else levels[0]
    run.noise[dataset] = noise
    at_noise = [{"epoch": row.get("epoch"), **(information_at(row, noise) or {})} for row in rows]
    for key in ("i_xt", "i_ty"):
        run.geometry[key, dataset] = series(at_noise, key)


def dpi_violations(run):
    """{MINE series (dataset, with its protocol): epochs whose I(X;T) estimate is below the I(T;Y)
    estimate on the same images}: impossible for the quantities, so a loose I(X;T) bound."""
    found = {}
    for (mode, dataset), xt in run.mine.items():
        ty = run.mine.get(("ty", dataset)) if mode == "xt" else None
        if ty:
            epochs = [epoch for epoch in xt if epoch in ty and xt[epoch] < ty[epoch]]
            if epochs:
                found[dataset] = epochs
    return found


def choose_transfer(runs, target, protocol):
    """(target, protocol) to show: train_bn if present, then the first target alphabetically.

    Every run is shown with the same choice, otherwise the lines would not be comparable.
    Returns None when no run has a transfer file and none was asked for.
    """
    present = sorted({key for run in runs for key in run.transfer})
    wanted = [(t, p) for t, p in present if target in (None, t) and protocol in (None, p)]
    if not wanted:
        if not present and target is None and protocol is None:
            return None
        have = ", ".join(f"{t}/{p}" for t, p in present) or "none"
        raise util.UserError(f"no transfer_{target or '*'}_{protocol or '*'}.jsonl in the run folders "
                             f"(target/protocol present: {have})")
    protocols = {p for _, p in wanted}
    chosen_protocol = DEFAULT_PROTOCOL if DEFAULT_PROTOCOL in protocols else min(protocols)
    return min(t for t, p in wanted if p == chosen_protocol), chosen_protocol


# --------------------------------------------------------------------------- table

def best(values):
    """(epoch, value) of the maximum, the earliest epoch on ties; None for no data."""
    if not values:
        return None
    return max(values.items(), key=lambda item: (item[1], -item[0]))


def summarize(run, choice):
    """The table's numbers for one run, transfer accuracies in percent."""
    transfer = {epoch: 100 * acc for epoch, acc in run.transfer.get(choice, {}).items()}
    best_transfer = best(transfer)
    last_transfer = list(transfer.items())[-1] if transfer else None
    return {
        "best_test": best(run.test_top1),
        "best_transfer": best_transfer,
        "last_transfer": last_transfer,
        "drop": best_transfer[1] - last_transfer[1] if transfer else None,
    }


def markdown(runs, choice, others):
    heading = (f"Transfer to {choice[0]}, protocol {choice[1]}" if choice
               else "No transfer results")
    lines = [f"## Discriminability-transferability trade-off ({heading})", ""]
    if others:
        lines += ["Also present (choose with --target/--protocol): "
                  + ", ".join(f"{t}/{p}" for t, p in others), ""]
    lines += ["| run | best test acc (%) | at epoch | best transfer acc (%) | at epoch "
              "| transfer acc at last epoch (%) | last epoch | drop best to last (pp) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        s = summarize(run, choice)
        cells = [*pair(s["best_test"]), *pair(s["best_transfer"]), *pair(s["last_transfer"]),
                 "-" if s["drop"] is None else f"{s['drop']:.2f}"]
        lines.append(f"| {run.name} | " + " | ".join(cells) + " |")
    lines += dpi_markdown(runs)
    return "\n".join(lines) + "\n"


def dpi_markdown(runs):
    """The data-processing check of every run's MINE estimates, as lines of the table file."""
    checked = [run for run in runs if any(mode == "xt" and ("ty", d) in run.mine for mode, d in run.mine)]
    if not checked:
        return []
    lines = ["", "Data-processing check: T is computed from X, so I(X;T) >= I(T;Y) on the same images."]
    for run in checked:
        violations = dpi_violations(run)
        if not violations:
            lines.append(f"- {run.name}: MINE I(X;T) >= I(T;Y) at every checkpoint measured on both.")
        for dataset, epochs in violations.items():
            lines.append(f"- {run.name}: **MINE I(X;T) below I(T;Y) on {dataset} at epoch(s) "
                         f"{', '.join(map(str, epochs))}: violates the data-processing inequality**; there the "
                         f"I(X;T) estimate is a loose lower bound, not compression (geometry.py's I(X;T_s) is not).")
    return lines


def pair(epoch_value):
    """Table cells (value, epoch) of an (epoch, value) pair; dashes where a run has no data."""
    if epoch_value is None:
        return ["-", "-"]
    epoch, value = epoch_value
    return [f"{value:.2f}", str(epoch)]


# --------------------------------------------------------------------------- plot

@dataclass
class Panel:
    title: str
    ylabel: str
    by_run: dict  # run name -> {epoch: value}
    is_transfer: bool = False
    log: bool = False  # a logarithmic y axis (NC1 spans orders of magnitude)


def panels(runs, choice):
    """The panels some run has data for: source accuracy, transfer, then each MINE series."""
    found = [Panel("Source test accuracy", "top-1 (%)", {r.name: r.test_top1 for r in runs})]
    if choice:
        found.append(Panel(f"Transfer to {choice[0]} ({choice[1]})", "linear-probe acc (%)",
                           {r.name: {e: 100 * a for e, a in r.transfer.get(choice, {}).items()} for r in runs},
                           is_transfer=True))
    # I(X;T) before I(T;Y), as in the paper; within a mode, data sets alphabetically.
    for mode, dataset in sorted({key for r in runs for key in r.mine}, key=lambda k: (k[0] != "xt", k[1])):
        found.append(Panel(f"{NAMES[mode]} on {dataset}", "MINE estimate (nats)",
                           {r.name: r.mine.get((mode, dataset), {}) for r in runs}))
    for dataset in sorted({dataset for r in runs for _, dataset in r.geometry}):
        noise = sorted({r.noise[dataset] for r in runs if dataset in r.noise})
        found += [Panel(f"NC1 on {dataset}", "tr(Sigma_W Sigma_B^+) / C",
                        {r.name: r.geometry.get(("nc1", dataset), {}) for r in runs}, log=True),
                  Panel(f"Effective rank on {dataset}", "effective rank",
                        {r.name: r.geometry.get(("effective_rank", dataset), {}) for r in runs})]
        for key, name in (("i_xt", "I(X;T_s)"), ("i_ty", "I(T_s;Y)")):
            found.append(Panel(f"{name} on {dataset}, s = {'/'.join(f'{n:g}' for n in noise)}",
                               "nats (noisy features)", {r.name: r.geometry.get((key, dataset), {}) for r in runs}))
    return [panel for panel in found if any(panel.by_run.values())]


def draw(runs, choice, shown, path):
    columns = min(2, len(shown))
    rows = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.6 * rows),
                             squeeze=False, layout="constrained")
    # One colour per run across all panels, so a run can be followed by eye.
    colors = {run.name: f"C{index % 10}" for index, run in enumerate(runs)}
    best_epochs = {run.name: (summarize(run, choice)["best_transfer"] or (None,))[0] for run in runs}
    for ax, panel in zip(axes.flat, shown):
        for name, values in panel.by_run.items():
            draw_series(ax, values, colors[name], best_epochs[name], panel.is_transfer)
        ax.set(title=panel.title, xlabel="training epoch", ylabel=panel.ylabel)
        if panel.log and all(v > 0 for values in panel.by_run.values() for v in values.values()):
            ax.set_yscale("log")
            for axis_ticks in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
                axis_ticks(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.grid(alpha=0.3)
    # One epoch axis for every panel, so the marked epochs line up from panel to panel.
    epochs = [epoch for panel in shown for values in panel.by_run.values() for epoch in values]
    pad = max(0.5, 0.03 * (max(epochs) - min(epochs)))
    for ax in axes.flat[:len(shown)]:
        ax.set_xlim(min(epochs) - pad, max(epochs) + pad)
    for ax in axes.flat[len(shown):]:
        ax.remove()
    # Built from the runs, not from one panel: a run may be missing from any single panel.
    handles = [Line2D([], [], color=color, marker="o", markersize=3) for color in colors.values()]
    labels = list(colors)
    if choice:
        handles.append(Line2D([], [], color="white", marker="*", markersize=12, markeredgecolor="black"))
        labels.append("best transfer epoch (dotted line in the other panels)")
    fig.legend(handles, labels, loc="outside lower center", fontsize="small")
    save_png(fig, path)
    plt.close(fig)


def draw_series(ax, values, color, best_epoch, is_transfer):
    """A run's line; its best-transfer epoch as a star on the transfer line and a thin
    vertical line elsewhere, to read off what discriminability and information did there."""
    if values:
        ax.plot(list(values), list(values.values()), marker="o", markersize=3, color=color)
    if best_epoch is None:
        return
    if is_transfer:
        ax.plot([best_epoch], [values[best_epoch]], marker="*", markersize=14, color=color,
                markeredgecolor="black", linestyle="none")
    else:
        ax.axvline(best_epoch, color=color, linewidth=0.8, linestyle=":")


def save_png(fig, path):
    """Render to a temp name and rename, so a reader never sees a half-written image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=110)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- main

def parse_args(argv):
    parser = util.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_FOLDER",
                        help="run folder name under save/model/, or a path to one")
    parser.add_argument("--out", default="tradeoff", help="writes PREFIX.png and PREFIX.md")
    parser.add_argument("--protocol", help="transfer protocol to show (default: train_bn if present)")
    parser.add_argument("--target", help="transfer target to show (default: the first alphabetically)")
    return parser.parse_args(argv)


def run_names(folders):
    """Legend and table names: the folder name, or the whole path where two runs share a
    name (the same run copied from two machines), so neither line hides the other."""
    names = [folder.name for folder in folders]
    return [str(folder) if names.count(folder.name) > 1 else folder.name for folder in folders]


def plot_tradeoff(args):
    folders = [resolve_run_folder(name) for name in args.runs]
    runs = [load_run(folder, name) for folder, name in zip(folders, run_names(folders))]
    choice = choose_transfer(runs, args.target, args.protocol)
    shown = panels(runs, choice)
    if not shown:
        raise util.UserError(f"the results files of {', '.join(args.runs)} hold no usable rows; nothing to plot")
    others = sorted({key for run in runs for key in run.transfer} - {choice})
    png_path, md_path = Path(f"{args.out}.png"), Path(f"{args.out}.md")
    table = markdown(runs, choice, others)
    util.atomic_write_text(md_path, table)
    draw(runs, choice, shown, png_path)
    print(table)
    print(f"wrote {png_path}")
    print(f"wrote {md_path}")


def main(argv=None):
    return util.run_main(lambda: plot_tradeoff(parse_args(argv)))


if __name__ == "__main__":
    main()
