"""Figures and table of the real-photograph study (scripts/real_study.sh), from its run folders.

    python scripts/study_report.py --group vanilla RUN [RUN ...] --group CTC RUN [RUN ...] [--out PREFIX]

A group is one method trained with several seeds, its runs listed in seed order (the same
order in every group: CTC and vanilla are compared seed by seed). Reads only each run's
metrics.csv and its results files (transfer_<target>_{train_bn,adabn}.jsonl,
mine_{xt,ty}_<data set>[_heldout].jsonl, geometry_<data set>.jsonl) and writes:

- PREFIX.md, every statistic fixed in advance (scripts/study_statistics.py):
  per probe and method, the late drop of the transfer accuracy (middle third of the
  checkpoints minus the last third, per seed, a 95% t interval over seeds, whether a fall is
  declared, the smallest window difference the seeds could detect, the checkpoint noise) for
  the paper's number (the best test accuracy over the probe's epochs) and the probe's last
  epoch side by side, the source accuracy over the same windows, and the cross-fitted peak
  drop; CTC against vanilla paired by seed at vanilla's last epoch and at each run's end;
  MINE and geometry.py's series at the first checkpoint, the end of the middle third and the
  last checkpoint, with every checkpoint whose MINE I(X;T) reads below its I(T;Y) flagged as a
  data-processing violation; the mean accuracies at every checkpoint.
- PREFIX_tradeoff.png: source accuracy, transfer accuracy (both probes), MINE series and the
  geometry against epoch, a line for the mean over seeds and a band from min to max, the two
  windows of the late drop shaded.
- PREFIX_infoplane.png: I(T_s;Y) against I(X;T_s) (geometry.py, noise SHOWN_NOISE) where every run
  has them, else MINE's I(T;Y) against I(X;T) (held-out estimates where every run has them).
"""
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import util  # noqa: E402
from helper.geometry.report import MEASURES, information_at  # noqa: E402
from helper.geometry.report import results_file_name as geometry_file_name  # noqa: E402
from helper.mine.report import NAMES as MODES  # noqa: E402
from helper.mine.report import PROTOCOLS as MINE_PROTOCOLS  # noqa: E402
from helper.mine.report import results_file_name  # noqa: E402
from helper.run import resolve_run_folder  # noqa: E402
from helper.transfer import probe_name  # noqa: E402
from scripts import study_statistics as statistics  # noqa: E402
from scripts.plot_tradeoff import SHOWN_NOISE, read, save_png, series  # noqa: E402

PROBES = ("train_bn", "adabn")  # train_bn: the paper's protocol, the table's first
PROBE_NUMBERS = {"best": ("best_acc", "best test accuracy over the probe's epochs (the paper's number)"),
                 "last": ("final_acc", "test accuracy after the probe's last epoch")}
TASKS = ("source", "target")
METHOD_STYLE = [("C0", "o"), ("C3", "s"), ("C2", "^"), ("C4", "D")]  # colour and marker per group
MINE_LINE = {"reference": "-", "heldout": "--"}
INFORMATION = {"i_xt": "I(X;T_s)", "i_ty": "I(T_s;Y)"}


@dataclass
class StudyRun:
    name: str
    method: str
    source_acc: dict                              # epoch -> source test top-1 (%), every epoch of metrics.csv
    transfer: dict = field(default_factory=dict)  # (probe, number) -> {epoch: target test accuracy (%)}
    mine: dict = field(default_factory=dict)      # (mode, task, MINE protocol) -> {epoch: estimate (nats)}
    geometry: dict = field(default_factory=dict)  # (task, key) -> {epoch: value}; key a measure or (i_xt|i_ty, noise)

    def curve(self, probe, number="best"):
        return self.transfer.get((probe, number), {})


def load_run(folder, method, tags):
    folder = Path(folder)
    run = StudyRun(folder.name, method, series(util.read_csv(folder / "metrics.csv"), "test_top1"))
    for probe in PROBES:
        rows = read(folder / f"transfer_{probe_name(tags['target'], probe, False)}.jsonl")
        for number, (key, _) in PROBE_NUMBERS.items():
            values = {epoch: 100 * acc for epoch, acc in series(rows, key).items()}
            if values:
                run.transfer[probe, number] = values
    for mode in MODES:
        for task in TASKS:
            for protocol in MINE_PROTOCOLS:
                values = series(read(folder / results_file_name(mode, tags[task], protocol)), "estimate")
                if values:
                    run.mine[mode, task, protocol] = values
    for task in TASKS:
        rows = read(folder / geometry_file_name(tags[task]))
        for key in MEASURES:
            if values := series(rows, key):
                run.geometry[task, key] = values
        for noise in sorted({level.get("noise") for row in rows for level in row.get("information", [])}):
            at_noise = [{"epoch": row.get("epoch"), **(information_at(row, noise) or {})} for row in rows]
            for key in INFORMATION:
                if values := series(at_noise, key):
                    run.geometry[task, (key, noise)] = values
    if not (run.source_acc or run.transfer or run.mine or run.geometry):
        raise util.UserError(f"{folder} holds no metrics.csv or results files of the study")
    return run


# --------------------------------------------------------------------------- numbers

def common_epochs(values_list):
    """The epochs every series has, in order: a seed still being analysed never pairs one seed's
    epoch 6 with another's epoch 4."""
    sets = [set(values) for values in values_list if values]
    return sorted(set.intersection(*sets)) if sets else []


def aligned(runs, get):
    """(epochs, [per-run list of values on those epochs]) of the runs that have the series."""
    found = [get(run) for run in runs if get(run)]
    epochs = common_epochs(found)
    return epochs, [[values[epoch] for epoch in epochs] for values in found]


def late_drop_numbers(runs, get):
    """The late drop of one series over a method's seeds, or None with fewer than 3 checkpoints."""
    epochs, curves = aligned(runs, get)
    if len(epochs) < 3:
        return None
    middle, last = statistics.windows(len(epochs))
    drop = statistics.late_drop(curves)
    return {"epochs": epochs, "middle": [epochs[i] for i in middle], "last": [epochs[i] for i in last],
            "drop": drop, "noise": statistics.checkpoint_noise(curves),
            "detectable": statistics.detectable_difference(drop.stderr, drop.seeds),
            "crossfit": statistics.crossfit_drop(curves)}


def source_window_change(runs, epochs_middle, epochs_last):
    """How the source test accuracy moved between the late drop's windows: last minus middle mean, per seed."""
    values = [sum(run.source_acc[e] for e in epochs_last) / len(epochs_last)
              - sum(run.source_acc[e] for e in epochs_middle) / len(epochs_middle)
              for run in runs if all(e in run.source_acc for e in epochs_middle + epochs_last)]
    return statistics.t_interval(values) if values else None


def interval_text(interval, digits=2):
    if interval.seeds < 2:
        return f"{interval.mean:+.{digits}f} (one seed: no interval)"
    return (f"{interval.mean:+.{digits}f} [{interval.low:+.{digits}f}, {interval.high:+.{digits}f}] "
            f"(95% interval over {interval.seeds} seeds)")


def window_text(epochs):
    return f"epochs {epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else f"epoch {epochs[0]}"


# --------------------------------------------------------------------------- markdown

def drop_markdown(groups, probe):
    lines = [f"### Late drop of the transfer accuracy, probe {probe}"
             + (" (the paper's protocol)" if probe == "train_bn" else " (BatchNorm re-estimated on the target)"), "",
             "Mean over the middle third of the checkpoints minus the mean over the last third, per seed (a "
             "positive value is a fall); a fall is declared when the 95% interval lies above zero.", "",
             "| method | probe number | middle window | last window | late drop (pp) | fall declared | "
             "smallest detectable (pp, 80% power) | checkpoint noise (pp) | source acc change (pp) | "
             "cross-fitted peak drop (pp) |", "|---|---|---|---|---|---|---:|---:|---|---|"]
    found = False
    for method, runs in groups.items():
        for number in PROBE_NUMBERS:
            numbers = late_drop_numbers(runs, lambda run: run.curve(probe, number))
            if numbers is None:
                continue
            found = True
            drop, source = numbers["drop"], source_window_change(runs, numbers["middle"], numbers["last"])
            noise = "-" if numbers["noise"] is None else f"{numbers['noise']:.2f}"
            crossfit = "-" if numbers["crossfit"] is None else interval_text(numbers["crossfit"])
            lines.append(f"| {method} | {number} | {window_text(numbers['middle'])} | {window_text(numbers['last'])} "
                         f"| {interval_text(drop)} | {'yes' if drop.falls else 'no'} | "
                         f"{numbers['detectable']:.2f} | {noise} | "
                         f"{'-' if source is None else interval_text(source)} | {crossfit} |")
    if not found:
        return []
    return lines + ["", "Probe numbers: " + "; ".join(f"{number}: {text}" for number, (_, text)
                                                      in PROBE_NUMBERS.items()) + ". Source acc change: the source "
                    "test accuracy over the last window minus the middle one (positive: still rising). Cross-fitted "
                    "peak drop: each seed's drop to the last checkpoint from the peak of the other half's mean curve "
                    "(secondary).", ""]


def seed_pairs(groups):
    """[(vanilla runs, other method's runs, other method)] paired by position (seed order)."""
    methods = list(groups)
    if len(methods) < 2:
        return []
    first = methods[0]
    return [(groups[first], groups[other], other) for other in methods[1:]]


def comparison_markdown(groups):
    """Each other method against the first, paired by seed: at the first method's last epoch, and
    each run at its own end."""
    lines = []
    for base_runs, other_runs, other in seed_pairs(groups):
        base = list(groups)[0]
        pairs = list(zip(base_runs, other_runs))
        rows = []
        for label, get in [("source test acc", lambda run: run.source_acc)] + [
                (f"transfer {probe} ({number})", lambda run, p=probe, n=number: run.curve(p, n))
                for probe in PROBES for number in PROBE_NUMBERS]:
            usable = [(a, b) for a, b in pairs if get(a) and get(b)]
            if not usable:
                continue
            at = min(max(get(a)) for a, _ in usable)  # the first method's last epoch
            equal = [(get(a)[at], get(b)[at]) for a, b in usable if at in get(b)]
            ends = [(get(a)[max(get(a))], get(b)[max(get(b))]) for a, b in usable]
            cells = [interval_text(statistics.paired_difference(*zip(*equal))) if equal else "-",
                     interval_text(statistics.paired_difference(*zip(*ends)))]
            rows.append(f"| {label} | {at} | " + " | ".join(cells) + " |")
        if rows:
            lines += [f"### {other} minus {base}, paired by seed (pp)", "",
                      f"| series | {base}'s last epoch | at that epoch | each run at its end |", "|---|---:|---|---|",
                      *rows, ""]
    return lines


def markers(runs, get):
    """(first epoch, last epoch of the middle window, last epoch) of a series every run has, or None."""
    epochs, _ = aligned(runs, get)
    if len(epochs) < 3:
        return None
    middle, _ = statistics.windows(len(epochs))
    return epochs[0], epochs[middle[-1]], epochs[-1]


def trajectory_cell(runs, get, digits=3):
    """'first -> end of middle third -> last', means over seeds."""
    marks = markers(runs, get)
    if marks is None:
        return "-"
    means = [mean_of([get(run)[epoch] for run in runs if get(run)]) for epoch in marks]
    return " -> ".join(f"{value:.{digits}f}" for value in means) + f" (epochs {marks[0]}, {marks[1]}, {marks[2]})"


def mean_of(values):
    return sum(values) / len(values)


def dpi_violations(runs, task, protocol):
    """(checkpoints where MINE's I(X;T) < I(T;Y) on the task's images, checkpoints with both)."""
    below = total = 0
    for run in runs:
        xt, ty = run.mine.get(("xt", task, protocol), {}), run.mine.get(("ty", task, protocol), {})
        for epoch in set(xt) & set(ty):
            total += 1
            below += xt[epoch] < ty[epoch]
    return below, total


def mine_markdown(groups):
    keys = sorted({key for runs in groups.values() for run in runs for key in run.mine},
                  key=lambda k: (k[0] != "xt", TASKS.index(k[1]), MINE_PROTOCOLS.index(k[2])))
    if not keys:
        return []
    lines = ["### MINE estimates (nats): first checkpoint -> end of the middle third -> last checkpoint", "",
             "Mean over seeds.", "", "| series | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for key in keys:
        mode, task, protocol = key
        cells = [trajectory_cell(runs, lambda run: run.mine.get(key, {})) for runs in groups.values()]
        lines.append(f"| {MODES[mode]} on {task} test images, {protocol} protocol | " + " | ".join(cells) + " |")
    lines += ["", "Data-processing check (T is computed from X, so I(X;T) >= I(T;Y) on the same images):"]
    for method, runs in groups.items():
        for task in TASKS:
            for protocol in MINE_PROTOCOLS:
                below, total = dpi_violations(runs, task, protocol)
                if total:
                    verdict = (f"**I(X;T) below I(T;Y) at {below} of {total} checkpoints: violates the "
                               f"data-processing inequality; these I(X;T) values are loose lower bounds, not "
                               f"compression**" if below else f"I(X;T) >= I(T;Y) at all {total} checkpoints")
                    lines.append(f"- {method}, {task} test images, MINE {protocol} protocol: {verdict}.")
    return lines + [""]


def geometry_markdown(groups):
    keys = sorted({key for runs in groups.values() for run in runs for key in run.geometry},
                  key=lambda k: (TASKS.index(k[0]), isinstance(k[1], tuple), str(k[1])))
    if not keys:
        return []
    lines = ["### Geometry of the features and noisy-feature information (geometry.py): first checkpoint -> end "
             "of the middle third -> last checkpoint", "",
             "Mean over seeds. I(X;T_s), I(T_s;Y) in nats at noise s relative to the features' scale.", "",
             "| series | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for key in keys:
        task, what = key
        name = (f"{INFORMATION[what[0]]}, s = {what[1]:g}" if isinstance(what, tuple) else MEASURES[what])
        cells = [trajectory_cell(runs, lambda run: run.geometry.get(key, {})) for runs in groups.values()]
        lines.append(f"| {name} on {task} test images | " + " | ".join(cells) + " |")
    return lines + [""]


def checkpoint_markdown(groups):
    """Mean source and transfer accuracy over seeds at every checkpoint, with its standard error."""
    columns = [(f"{method} {name}", runs, get) for method, runs in groups.items()
               for name, get in [("source", lambda run: run.source_acc)]
               + [(f"{probe} {number}", lambda run, p=probe, n=number: run.curve(p, n))
                  for probe in PROBES for number in PROBE_NUMBERS]
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
            if not values:
                cells.append("-")
                continue
            interval = statistics.t_interval(values)
            cells.append(f"{interval.mean:.2f}" + ("" if interval.seeds < 2 else f" +- {interval.stderr:.2f}"))
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return lines + [""]


def report_markdown(groups, title):
    lines = [f"## {title}", "", "Runs: " + "; ".join(f"{method}: {', '.join(run.name for run in runs)}"
                                                    for method, runs in groups.items()), ""]
    for probe in PROBES:
        lines += drop_markdown(groups, probe)
    return "\n".join(lines + comparison_markdown(groups) + mine_markdown(groups) + geometry_markdown(groups)
                     + checkpoint_markdown(groups))


# --------------------------------------------------------------------------- figures

def band(series_list):
    """(epochs, mean, min, max) over the runs that have each epoch."""
    epochs = sorted({epoch for values in series_list for epoch in values})
    columns = [[values[epoch] for values in series_list if epoch in values] for epoch in epochs]
    return (epochs, [sum(c) / len(c) for c in columns], [min(c) for c in columns], [max(c) for c in columns])


def panels(groups):
    """(title, y label, [(legend suffix, line style, getter)], shade windows) of every panel some run has data for."""
    found = [("Source test accuracy", "top-1 (%)", [("", "-", lambda run: run.source_acc)], False)]
    for probe in PROBES:
        found.append((f"Transfer to the target ({probe})", "linear-probe acc (%)",
                      [(f" ({number})", "-" if number == "best" else ":",
                        lambda run, p=probe, n=number: run.curve(p, n)) for number in PROBE_NUMBERS], True))
    for mode in MODES:
        for task in TASKS:
            found.append((f"MINE {MODES[mode]} on {task} test images", "MINE estimate (nats)",
                          [(f" ({protocol} MINE)", MINE_LINE[protocol],
                            lambda run, key=(mode, task, protocol): run.mine.get(key, {}))
                           for protocol in MINE_PROTOCOLS], False))
    for task in TASKS:
        for key in ("nc1", "effective_rank"):
            found.append((f"{MEASURES[key]} on {task} test images", MEASURES[key],
                          [("", "-", lambda run, k=(task, key): run.geometry.get(k, {}))], False))
        found.append((f"I(X;T_s) (-) and I(T_s;Y) (--) on {task}, s = {SHOWN_NOISE:g}", "nats (noisy features)",
                      [(f" {INFORMATION[key]}", "-" if key == "i_xt" else "--",
                        lambda run, k=(task, (key, SHOWN_NOISE)): run.geometry.get(k, {})) for key in INFORMATION],
                      False))
    runs = [run for group in groups.values() for run in group]
    shown = []
    for title, ylabel, lines, shade in found:
        lines = [line for line in lines if any(line[2](run) for run in runs)]
        if lines:
            shown.append((title, ylabel, lines, shade))
    return shown


def draw_tradeoff(groups, path):
    shown = panels(groups)
    columns = 3
    rows = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False, layout="constrained")
    first = next(iter(groups.values()))
    windows = late_drop_numbers(first, lambda run: run.curve(PROBES[0])) or late_drop_numbers(
        first, lambda run: run.curve(PROBES[1]))
    for ax, (title, ylabel, lines, shade) in zip(axes.flat, shown):
        if shade and windows:
            for epochs, color in ((windows["middle"], "0.85"), (windows["last"], "0.7")):
                ax.axvspan(epochs[0], epochs[-1], color=color, alpha=0.5, linewidth=0)
        for (method, runs), (color, _) in zip(groups.items(), METHOD_STYLE):
            for _, style, get in lines:
                values = [get(run) for run in runs if get(run)]
                if not values:
                    continue
                epochs, mean, low, high = band(values)
                ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
                ax.plot(epochs, mean, style, color=color, marker="o", markersize=2.5)
        ax.set(title=title, xlabel="training epoch", ylabel=ylabel)
        if title.startswith("NC1"):
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(shown):]:
        ax.remove()
    handles = [Line2D([], [], color=color, marker="o", markersize=3) for (color, _), _ in zip(METHOD_STYLE, groups)]
    labels = list(groups)
    handles += [Line2D([], [], color="black", linestyle=":")]
    labels += ["probe's last epoch (solid: best epoch, the paper's number)"]
    for protocol in sorted({key[2] for runs in groups.values() for run in runs for key in run.mine},
                           key=MINE_PROTOCOLS.index):
        handles.append(Line2D([], [], color="black", linestyle=MINE_LINE[protocol]))
        labels.append(f"MINE, {protocol} protocol")
    if windows:
        handles += [Patch(color="0.85"), Patch(color="0.7")]
        labels += [f"late drop: middle window ({window_text(windows['middle'])})",
                   f"last window ({window_text(windows['last'])})"]
    seeds = " and ".join(f"{len(runs)} {method}" for method, runs in groups.items())
    fig.suptitle(f"Real photographs: mean over seeds ({seeds} runs), band from min to max")
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize="small")
    save_png(fig, path)
    plt.close(fig)


def infoplane_source(runs, task):
    """(x getter, y getter, label) of the information plane on the task's images: geometry.py's
    I(X;T_s), I(T_s;Y) at SHOWN_NOISE where every run has them, else MINE's held-out estimates where
    every run has them, else the reference protocol's where some run has them; None without any."""
    def getters(xt_key, ty_key, store):
        return (lambda run: getattr(run, store).get(xt_key, {}), lambda run: getattr(run, store).get(ty_key, {}))

    candidates = [(*getters((task, ("i_xt", SHOWN_NOISE)), (task, ("i_ty", SHOWN_NOISE)), "geometry"),
                   f"noisy features, s = {SHOWN_NOISE:g}", all)]
    for protocol, every in (("heldout", all), ("reference", any)):
        candidates.append((*getters(("xt", task, protocol), ("ty", task, protocol), "mine"),
                           f"MINE {protocol} protocol", every))
    for xt, ty, label, every in candidates:
        if every(xt(run) and ty(run) for run in runs):
            return xt, ty, label
    return None


def draw_infoplane(groups, path):
    """Returns {task: what its panel shows}, {} when no run has information estimates."""
    runs = [run for group in groups.values() for run in group]
    chosen = {task: found for task in TASKS if (found := infoplane_source(runs, task))}
    if not chosen:
        return {}
    epochs = [epoch for run in runs for xt, _, _ in chosen.values() for epoch in xt(run)]
    norm = plt.Normalize(min(epochs), max(epochs))
    fig, axes = plt.subplots(1, len(chosen), figsize=(6 * len(chosen), 4.6), squeeze=False, layout="constrained")
    for ax, (task, (xt_of, ty_of, label)) in zip(axes.flat, chosen.items()):
        for (method, group), (color, marker) in zip(groups.items(), METHOD_STYLE):
            for run in group:
                xt, ty = xt_of(run), ty_of(run)
                common = sorted(set(xt) & set(ty))
                if not common:
                    continue
                x, y = [xt[e] for e in common], [ty[e] for e in common]
                ax.plot(x, y, color=color, linewidth=0.8, alpha=0.6)
                ax.scatter(x, y, c=common, cmap="viridis", norm=norm, marker=marker, s=28,
                           edgecolors=color, linewidths=0.8)
        ax.set(title=f"{task} test images, {label}", xlabel="I(X;T) (nats)", ylabel="I(T;Y) (nats)")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.grid(alpha=0.3)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes.ravel().tolist(), label="training epoch")
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.legend([Line2D([], [], color=color, marker=marker, linestyle="-") for (color, marker), _ in
                zip(METHOD_STYLE, groups)], list(groups), loc="outside lower center", ncol=len(groups))
    fig.suptitle("Information plane, one trajectory per run")
    save_png(fig, path)
    plt.close(fig)
    return {task: label for task, (_, _, label) in chosen.items()}


# --------------------------------------------------------------------------- main

def parse_args(argv):
    parser = util.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("METHOD", "RUN"),
                        help="a method's label and its run folders in seed order (names under save/model/ or paths)")
    parser.add_argument("--out", default="report/real_study", help="writes PREFIX.md, PREFIX_tradeoff.png, "
                        "PREFIX_infoplane.png")
    parser.add_argument("--source_tag", default="folder-source", help="data set tag of the source task's files")
    parser.add_argument("--target_tag", default="folder-target", help="data set tag of the target task's files")
    parser.add_argument("--title", default="Real-photograph study", help="the report's heading")
    args = parser.parse_args(argv)
    for group in args.group:
        if len(group) < 2:
            parser.error(f"--group {group[0]} names no run folder")
    return args


def study_report(args):
    tags = {"source": args.source_tag, "target": args.target_tag}
    groups = {method: [load_run(resolve_run_folder(name), method, tags) for name in names]
              for method, *names in args.group}
    text = report_markdown(groups, args.title)
    prefix = Path(args.out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    util.atomic_write_text(prefix.with_name(prefix.name + ".md"), text)
    draw_tradeoff(groups, prefix.with_name(prefix.name + "_tradeoff.png"))
    chosen = draw_infoplane(groups, prefix.with_name(prefix.name + "_infoplane.png"))
    print(text)
    print(f"wrote {prefix}.md, {prefix}_tradeoff.png" + (f", {prefix}_infoplane.png ("
          + ", ".join(f"{task}: {label}" for task, label in chosen.items()) + ")" if chosen
          else " (no information estimates: no information plane)"))


def main(argv=None):
    return util.run_main(lambda: study_report(parse_args(argv)))


if __name__ == "__main__":
    main()
