"""Figures and table of the real-photograph study (scripts/real_study.sh), from its run folders.

    python scripts/study_report.py --group vanilla RUN [RUN ...] --group CTC RUN [RUN ...] [--out PREFIX]

A group is one method trained with several seeds. Reads only each run's metrics.csv and
its results files (transfer_<target>_{train_bn,adabn}.jsonl, mine_{xt,ty}_<data set>.jsonl
and, when present, the held-out protocol's mine_{xt,ty}_<data set>_heldout.jsonl) and writes:

- PREFIX.md: per method the mean [min, max] over seeds, then per run, of the best and last
  source test accuracy, the best transfer accuracy and its epoch, the transfer accuracy at
  the last checkpoint, the drop between them and how much source accuracy still rose after
  the transfer peak; and what each MINE series did from the first checkpoint through the
  transfer peak to the last one; the peak of each method's mean transfer curve over seeds and
  the drop from it to the last checkpoint with its standard error over seeds; the mean
  source and transfer accuracy at every checkpoint.
- PREFIX_tradeoff.png: source accuracy, transfer accuracy (both probes) and every MINE
  series against epoch, a line for the mean over seeds and a band from min to max.
- PREFIX_infoplane.png: I(T;Y) against I(X;T), one trajectory per run, points coloured by
  epoch; held-out estimates where every run has them, else the reference protocol's.
"""
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import util  # noqa: E402
from helper.mine.report import NAMES as MODES  # noqa: E402
from helper.mine.report import PROTOCOLS as MINE_PROTOCOLS  # noqa: E402
from helper.mine.report import results_file_name  # noqa: E402
from helper.run import resolve_run_folder  # noqa: E402
from helper.transfer import probe_name  # noqa: E402
from scripts.plot_tradeoff import best, read, save_png, series  # noqa: E402

PROBES = ("train_bn", "adabn")  # train_bn: the paper's protocol, the table's first
TASKS = ("source", "target")
METHOD_STYLE = [("C0", "o"), ("C3", "s"), ("C2", "^"), ("C4", "D")]  # colour and marker per group
MINE_LINE = {"reference": "-", "heldout": "--"}


@dataclass
class StudyRun:
    name: str
    method: str
    source_acc: dict                             # epoch -> source test top-1 (%), every epoch of metrics.csv
    transfer: dict = field(default_factory=dict)  # probe -> {epoch: best target test accuracy (%)}
    mine: dict = field(default_factory=dict)      # (mode, task, MINE protocol) -> {epoch: estimate (nats)}


def load_run(folder, method, tags):
    folder = Path(folder)
    run = StudyRun(folder.name, method, series(util.read_csv(folder / "metrics.csv"), "test_top1"))
    for probe in PROBES:
        rows = read(folder / f"transfer_{probe_name(tags['target'], probe, False)}.jsonl")
        if rows:
            run.transfer[probe] = {epoch: 100 * acc for epoch, acc in series(rows, "best_acc").items()}
    for mode in MODES:
        for task in TASKS:
            for protocol in MINE_PROTOCOLS:
                values = series(read(folder / results_file_name(mode, tags[task], protocol)), "estimate")
                if values:
                    run.mine[mode, task, protocol] = values
    if not (run.source_acc or run.transfer or run.mine):
        raise util.UserError(f"{folder} holds no metrics.csv or results files of the study")
    return run


# --------------------------------------------------------------------------- numbers

def run_numbers(run, probe):
    """The table's numbers for one run and probe (accuracies in %, epochs); None without data."""
    transfer = run.transfer.get(probe)
    if not run.source_acc or not transfer:
        return None
    peak_epoch, peak = best(transfer)
    last_epoch, last = max(transfer.items())
    best_source_epoch, best_source = best(run.source_acc)
    last_source = run.source_acc[max(run.source_acc)]
    at_peak = run.source_acc.get(peak_epoch)
    return {"best_source": best_source, "best_source_epoch": best_source_epoch, "last_source": last_source,
            "best_transfer": peak, "peak_epoch": peak_epoch, "last_transfer": last, "last_epoch": last_epoch,
            "drop": peak - last, "source_gain_after_peak": None if at_peak is None else last_source - at_peak}


def table_numbers(groups, probe):
    """{method: {"runs": {run: numbers}, "mean"/"min"/"max": {number: value over the seeds}}}:
    every number the table prints, so that a test can recompute them from the files."""
    table = {}
    for method, runs in groups.items():
        per_run = {run.name: numbers for run in runs if (numbers := run_numbers(run, probe))}
        stats = {"runs": per_run, "mean": {}, "min": {}, "max": {}}
        for key in next(iter(per_run.values()), {}):
            values = [numbers[key] for numbers in per_run.values() if numbers[key] is not None]
            if values:
                stats["mean"][key] = sum(values) / len(values)
                stats["min"][key], stats["max"][key] = min(values), max(values)
        table[method] = stats
    return table


def mean_and_stderr(values):
    """(mean, standard error of the mean) of a list; the error is None for fewer than 2 values."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


def mean_curve(runs, probe):
    """The peak of a method's mean transfer curve over seeds, on the epochs every seed has, and
    the drop from it to the last checkpoint with its standard error over seeds (from each seed's
    own difference between those two epochs). A run's own peak is the maximum of many noisy
    values and overstates its drop; the mean curve's peak is chosen once for all seeds."""
    curves = [run.transfer[probe] for run in runs if run.transfer.get(probe)]
    epochs = sorted(set.intersection(*(set(curve) for curve in curves))) if curves else []
    if not epochs:
        return None
    means = {epoch: mean_of([curve[epoch] for curve in curves]) for epoch in epochs}
    peak_epoch, peak = best(means)
    drop, stderr = mean_and_stderr([curve[peak_epoch] - curve[epochs[-1]] for curve in curves])
    return {"seeds": len(curves), "peak_epoch": peak_epoch, "peak": peak, "last_epoch": epochs[-1],
            "last": means[epochs[-1]], "drop": drop, "drop_stderr": stderr}


def mine_numbers(run, key):
    """(first, at the train_bn transfer peak, last) estimate of one MINE series; None where missing."""
    values = run.mine.get(key)
    if not values:
        return None
    numbers = run_numbers(run, PROBES[0])
    at_peak = values.get(numbers["peak_epoch"]) if numbers else None
    return values[min(values)], at_peak, values[max(values)]


# --------------------------------------------------------------------------- markdown

COLUMNS = [("best_source", "best source acc (%)"), ("last_source", "last source acc (%)"),
           ("best_transfer", "best transfer acc (%)"), ("peak_epoch", "transfer peak epoch"),
           ("last_transfer", "transfer acc at last checkpoint (%)"), ("drop", "drop peak to last (pp)"),
           ("source_gain_after_peak", "source acc gained after the peak (pp)")]


def cell(stats, key):
    if key not in stats["mean"]:
        return "-"
    mean, low, high = stats["mean"][key], stats["min"][key], stats["max"][key]
    digits = 1 if key == "peak_epoch" else 2
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def run_cell(numbers, key):
    value = numbers[key]
    if value is None:
        return "-"
    return str(value) if key.endswith("epoch") else f"{value:.2f}"


def markdown(groups, probe):
    table = table_numbers(groups, probe)
    heading = "the paper's protocol" if probe == "train_bn" else "BatchNorm re-estimated on the target"
    lines = [f"### Transfer to the target task: probe {probe} ({heading})", "",
             "Per method: mean [min, max] over seeds.", "",
             "| method | seeds | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COLUMNS)]
    for method, stats in table.items():
        lines.append(f"| {method} | {len(stats['runs'])} | " + " | ".join(cell(stats, key) for key, _ in COLUMNS) + " |")
    lines += ["", "| run | " + " | ".join(title for _, title in COLUMNS) + " | last checkpoint epoch |",
              "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for stats in table.values():
        for name, numbers in stats["runs"].items():
            lines.append(f"| {name} | " + " | ".join(run_cell(numbers, key) for key, _ in COLUMNS)
                         + f" | {numbers['last_epoch']} |")
    lines += ["", *comparison(table), *mean_curve_lines(groups, probe), ""]
    return lines


def mean_curve_lines(groups, probe):
    lines = []
    for method, runs in groups.items():
        curve = mean_curve(runs, probe)
        if curve is None:
            continue
        error = "" if curve["drop_stderr"] is None else f" +- {curve['drop_stderr']:.2f}"
        lines.append(f"Mean curve over the {curve['seeds']} {method} seeds: peak {curve['peak']:.2f}% at epoch "
                     f"{curve['peak_epoch']}, {curve['last']:.2f}% at the last checkpoint (epoch "
                     f"{curve['last_epoch']}): drop {curve['drop']:.2f}{error} pp (standard error over seeds "
                     f"of each seed's difference between those epochs).")
    return [""] + lines if lines else []


def comparison(table):
    """The last transfer accuracy of each method against the first, next to the seeds' spread."""
    methods = [method for method, stats in table.items() if "last_transfer" in stats["mean"]]
    if len(methods) < 2:
        return []
    first, spread = methods[0], {m: table[m]["max"]["last_transfer"] - table[m]["min"]["last_transfer"]
                                 for m in methods}
    return [f"Transfer accuracy at the last checkpoint, {other} minus {first}: "
            f"{table[other]['mean']['last_transfer'] - table[first]['mean']['last_transfer']:+.2f} pp "
            f"(spread between seeds, max minus min: {first} {spread[first]:.2f} pp, {other} {spread[other]:.2f} pp)."
            for other in methods[1:]]


def mine_markdown(groups):
    keys = sorted({key for runs in groups.values() for run in runs for key in run.mine},
                  key=lambda k: (k[0] != "xt", TASKS.index(k[1]), MINE_PROTOCOLS.index(k[2])))
    if not keys:
        return ["### MINE", "", "No MINE results.", ""]
    lines = ["### MINE estimates (nats): first checkpoint -> transfer peak (train_bn) -> last checkpoint", "",
             "Mean over seeds.", "", "| series | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for key in keys:
        cells = []
        for runs in groups.values():
            found = [numbers for run in runs if (numbers := mine_numbers(run, key))]
            means = [mean_of(position) for position in zip(*found)] if found else []
            cells.append(" -> ".join("-" if value is None else f"{value:.3f}" for value in means) or "-")
        mode, task, protocol = key
        lines.append(f"| {MODES[mode]} on {task} test images, {protocol} protocol | " + " | ".join(cells) + " |")
    return lines + [""]


def mean_of(values):
    values = [value for value in values if value is not None]
    return sum(values) / len(values) if values else None


def checkpoint_markdown(groups):
    """Mean source and transfer accuracy over seeds at every checkpoint, with its standard error."""
    columns = [(f"{method} {name}", runs, get) for method, runs in groups.items()
               for name, get in [("source", lambda run: run.source_acc)]
               + [(probe, lambda run, probe=probe: run.transfer.get(probe, {})) for probe in PROBES]
               if any(get(run) for run in runs)]
    epochs = sorted({epoch for runs in groups.values() for run in runs for values in run.transfer.values()
                     for epoch in values})
    if not epochs:
        return []
    lines = ["### Mean accuracy over seeds at every checkpoint (%, +- standard error over seeds)", "",
             "| epoch | " + " | ".join(title for title, _, _ in columns) + " |", "|---:|" + "---:|" * len(columns)]
    for epoch in epochs:
        cells = []
        for _, runs, get in columns:
            values = [get(run)[epoch] for run in runs if epoch in get(run)]
            mean, stderr = mean_and_stderr(values) if values else (None, None)
            cells.append("-" if mean is None else f"{mean:.2f}" + ("" if stderr is None else f" +- {stderr:.2f}"))
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return lines + [""]


def report_markdown(groups):
    lines = ["## Real-photograph study: CIFAR-10 airplane/automobile/bird/cat/deer -> dog/frog/horse/ship/truck", ""]
    for probe in PROBES:
        if any(probe in run.transfer for runs in groups.values() for run in runs):
            lines += markdown(groups, probe)
    return "\n".join(lines + mine_markdown(groups) + checkpoint_markdown(groups))


# --------------------------------------------------------------------------- figures

def band(series_list):
    """(epochs, mean, min, max) over the runs that have each epoch."""
    epochs = sorted({epoch for values in series_list for epoch in values})
    columns = [[values[epoch] for values in series_list if epoch in values] for epoch in epochs]
    return (epochs, [sum(c) / len(c) for c in columns], [min(c) for c in columns], [max(c) for c in columns])


def panels(groups):
    """(title, y label, [(legend suffix, line style, getter)]) of every panel some run has data for."""
    found = [("Source test accuracy", "top-1 (%)", [("", "-", lambda run: run.source_acc)])]
    for probe in PROBES:
        found.append((f"Transfer to the target ({probe})", "linear-probe acc (%)",
                      [("", "-", lambda run, probe=probe: run.transfer.get(probe, {}))]))
    for mode in MODES:
        for task in TASKS:
            found.append((f"{MODES[mode]} on {task} test images", "MINE estimate (nats)",
                          [(f" ({protocol} MINE)", MINE_LINE[protocol],
                            lambda run, key=(mode, task, protocol): run.mine.get(key, {}))
                           for protocol in MINE_PROTOCOLS]))
    runs = [run for group in groups.values() for run in group]
    shown = []
    for title, ylabel, lines in found:
        lines = [line for line in lines if any(line[2](run) for run in runs)]
        if lines:
            shown.append((title, ylabel, lines))
    return shown


def draw_tradeoff(groups, path):
    shown = panels(groups)
    columns = 3
    rows = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False, layout="constrained")
    # Each method's peak of the mean train_bn curve: a star there, a dotted line in the other panels.
    # Where the table's mean curve peaks (over the epochs every seed has): the star marks that value.
    peaks = {method: curve for method, runs in groups.items() if (curve := mean_curve(runs, PROBES[0]))}
    for ax, (title, ylabel, lines) in zip(axes.flat, shown):
        for (method, runs), (color, _) in zip(groups.items(), METHOD_STYLE):
            for _, style, get in lines:
                values = [get(run) for run in runs if get(run)]
                if not values:
                    continue
                epochs, mean, low, high = band(values)
                ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
                ax.plot(epochs, mean, style, color=color, marker="o", markersize=2.5)
                if method in peaks and title.startswith("Transfer") and PROBES[0] in title:
                    ax.plot([peaks[method]["peak_epoch"]], [peaks[method]["peak"]], marker="*", markersize=14,
                            color=color, markeredgecolor="black", linestyle="none")
                elif method in peaks:
                    ax.axvline(peaks[method]["peak_epoch"], color=color, linewidth=0.8, linestyle=":")
        ax.set(title=title, xlabel="training epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(shown):]:
        ax.remove()
    handles = [Line2D([], [], color=color, marker="o", markersize=3) for (color, _), _ in zip(METHOD_STYLE, groups)]
    labels = list(groups)
    for protocol in sorted({key[2] for runs in groups.values() for run in runs for key in run.mine},
                           key=MINE_PROTOCOLS.index):
        handles.append(Line2D([], [], color="black", linestyle=MINE_LINE[protocol]))
        labels.append(f"MINE, {protocol} protocol")
    if peaks:
        handles.append(Line2D([], [], color="white", marker="*", markersize=12, markeredgecolor="black"))
        labels.append(f"peak of the mean {PROBES[0]} transfer (dotted line in the other panels)")
    seeds = " and ".join(f"{len(runs)} {method}" for method, runs in groups.items())
    fig.suptitle(f"Real photographs: mean over seeds ({seeds} runs), band from min to max")
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize="small")
    save_png(fig, path)
    plt.close(fig)


def infoplane_protocol(runs, task):
    """'heldout' when every run has held-out I(X;T) and I(T;Y) on the task's images, else
    'reference' when some run has the reference pair, else None."""
    def has(run, protocol):
        return ("xt", task, protocol) in run.mine and ("ty", task, protocol) in run.mine
    if all(has(run, "heldout") for run in runs):
        return "heldout"
    if any(has(run, "reference") for run in runs):
        return "reference"
    return None


def draw_infoplane(groups, path):
    """Returns the MINE protocol used per task, or {} when no run has MINE estimates."""
    runs = [run for group in groups.values() for run in group]
    chosen = {task: protocol for task in TASKS if (protocol := infoplane_protocol(runs, task))}
    if not chosen:
        return {}
    epochs = [epoch for run in runs for values in run.mine.values() for epoch in values]
    norm = plt.Normalize(min(epochs), max(epochs))
    fig, axes = plt.subplots(1, len(chosen), figsize=(6 * len(chosen), 4.6), squeeze=False, layout="constrained")
    for ax, (task, protocol) in zip(axes.flat, chosen.items()):
        for (method, group), (color, marker) in zip(groups.items(), METHOD_STYLE):
            for run in group:
                xt, ty = run.mine.get(("xt", task, protocol), {}), run.mine.get(("ty", task, protocol), {})
                common = sorted(set(xt) & set(ty))
                if not common:
                    continue
                x, y = [xt[e] for e in common], [ty[e] for e in common]
                ax.plot(x, y, color=color, linewidth=0.8, alpha=0.6)
                ax.scatter(x, y, c=common, cmap="viridis", norm=norm, marker=marker, s=28,
                                    edgecolors=color, linewidths=0.8)
        ax.set(title=f"{task} test images, MINE {protocol} protocol", xlabel="I(X;T) (nats)", ylabel="I(T;Y) (nats)")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.grid(alpha=0.3)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes.ravel().tolist(), label="training epoch")
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.legend([Line2D([], [], color=color, marker=marker, linestyle="-") for (color, marker), _ in
                zip(METHOD_STYLE, groups)], list(groups), loc="outside lower center", ncol=len(groups))
    used = sorted(set(chosen.values()), key=MINE_PROTOCOLS.index)
    fig.suptitle(f"Information plane, one trajectory per run (MINE {' and '.join(used)} protocol)")
    save_png(fig, path)
    plt.close(fig)
    return chosen


# --------------------------------------------------------------------------- main

def parse_args(argv):
    parser = util.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("METHOD", "RUN"),
                        help="a method's label and its run folders (names under save/model/ or paths)")
    parser.add_argument("--out", default="report/real_study", help="writes PREFIX.md, PREFIX_tradeoff.png, "
                        "PREFIX_infoplane.png")
    parser.add_argument("--source_tag", default="folder-source", help="data set tag of the source task's files")
    parser.add_argument("--target_tag", default="folder-target", help="data set tag of the target task's files")
    args = parser.parse_args(argv)
    for group in args.group:
        if len(group) < 2:
            parser.error(f"--group {group[0]} names no run folder")
    return args


def study_report(args):
    tags = {"source": args.source_tag, "target": args.target_tag}
    groups = {method: [load_run(resolve_run_folder(name), method, tags) for name in names]
              for method, *names in args.group}
    text = report_markdown(groups)
    prefix = Path(args.out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    util.atomic_write_text(prefix.with_name(prefix.name + ".md"), text)
    draw_tradeoff(groups, prefix.with_name(prefix.name + "_tradeoff.png"))
    chosen = draw_infoplane(groups, prefix.with_name(prefix.name + "_infoplane.png"))
    print(text)
    print(f"wrote {prefix}.md, {prefix}_tradeoff.png" + (f", {prefix}_infoplane.png (MINE protocol: "
          + ", ".join(f"{task} {protocol}" for task, protocol in chosen.items()) + ")" if chosen
          else " (no MINE results: no information plane)"))


def main(argv=None):
    return util.run_main(lambda: study_report(parse_args(argv)))


if __name__ == "__main__":
    main()
