"""The paper's whole analysis on real photographs; run it as `bash scripts/real_study.sh` or `make study`.

CIFAR-10 split by class into a source task (airplane automobile bird cat deer) and a
target task (dog frog horse ship truck), prepared by scripts/real_study_data.py. For each
seed a vanilla and a CTC run on the source; for every checkpoint of every run the linear
probe on the target (train_bn, the paper's protocol, and adabn) and MINE estimates of
I(X;T) and I(T;Y) on the source and on the target test images (each protocol of
MINE_PROTOCOLS); then scripts/study_report.py draws the figures and writes the table.

Profiles (sizes below): `cpu` (default without CUDA), `gpu` (default with CUDA, or
STUDY_PROFILE=gpu) and `smoke` (STUDY_SMOKE=1, every step at toy size). Every size can be
overridden by the environment variable of its name in capitals (EPOCHS=30, SEEDS="0 1 2"
...). Everything lands in STUDY_DIR (default study/<profile>/ at the repository root, so that
profiles never mix): data/{source,target}/ (image folders), save/ (run folders, TensorBoard),
logs/<step>.log, logs/plan.txt, logs/timing.tsv and report/. Resumable like scripts/run_paper.sh: rerun the
same command and finished work is skipped (training resumes from its last checkpoint,
transfer and MINE skip checkpoints already in their results files).

Seeds run in JOBS parallel lanes. Each step runs the entry script's main() in a process
forked from this one, which has already imported them: a step costs its work, not the
seconds of importing torch again.
"""
import argparse
import contextlib
import dataclasses
import importlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import util  # noqa: E402
from helper.mine.report import PROTOCOLS as MINE_PROTOCOLS  # noqa: E402
from scripts import real_study_data, study_report  # noqa: E402

ENTRY_SCRIPTS = ("train_vanilla", "train_ctc", "transfer", "mine", "geometry")
METHODS = ("vanilla", "ctc")
SOURCE, TARGET = "folder:data/source", "folder:data/target"  # relative to the study folder, the working directory
STUDY_ROOT = ROOT / "study"  # the default STUDY_DIR is study/<profile>/
INTERRUPTED = 130  # the exit code of a script stopped by Ctrl-C (util.run_main)


@dataclasses.dataclass(frozen=True)
class Profile:
    """The study's sizes; each field can be overridden by the environment variable of its name in capitals."""
    model: str
    train_per_class: str    # training images per class and task, or 'all' (5000)
    test_per_class: str     # test images per class and task, or 'all' (1000)
    epochs: int             # vanilla's; CTC trains 1.5x as long, stage two from vanilla's last epoch (the paper's 200/300)
    save_freq: int          # a checkpoint every this many epochs; all are analysed
    seeds: str
    lr: float
    batch: int
    nce_k: int              # CTC negatives per sample
    probe_epochs: int
    probe_batch: int
    mine_hidden: int
    mine_batch: int
    xt_iters: str
    ty_iters: str
    xt_lr: str
    ty_lr: str
    jobs: int               # parallel lanes (seeds are dealt out to them)
    mine_protocols: str = "reference heldout"
    tasks: str = "halves"   # how CIFAR-10 becomes source and target (scripts/real_study_data.py LAYOUTS)
    methods: str = "vanilla ctc"
    probes: str = "train_bn adabn"
    train_args: str = ""    # extra flags for every call of that script
    transfer_args: str = ""
    mine_args: str = ""
    geometry_args: str = ""


PROFILES = {
    # Every step at toy size: shows that the study runs end to end, in a few minutes.
    "smoke": Profile(model="resnet8", train_per_class="40", test_per_class="20", epochs=4, save_freq=1, seeds="0 1",
                     lr=0.05, batch=32, nce_k=32, probe_epochs=2, probe_batch=64, mine_hidden=32, mine_batch=50,
                     xt_iters="40", ty_iters="40", xt_lr="1e-3", ty_lr="1e-3", jobs=2),
    # Four seeds, the whole test splits (5,000 images a task, so that one checkpoint's accuracy moves by
    # about half a point), the probe that converges at this size (adabn, 100 epochs: docs/real_study.md,
    # "The probe") and the held-out MINE protocol; geometry on 2,500 of the test images.
    "cpu": Profile(model="resnet8", train_per_class="300", test_per_class="all", epochs=48, save_freq=4,
                   seeds="0 1 2 3", lr=0.05, batch=64, nce_k=512, probe_epochs=100, probe_batch=128, mine_hidden=64,
                   mine_batch=250, xt_iters="300", ty_iters="400", xt_lr="5e-4", ty_lr="1e-3", jobs=2,
                   mine_protocols="heldout", probes="adabn", geometry_args="--rows 2500"),
    # The positive control (docs/real_study.md, "The positive control"): the CPU profile's sizes on the
    # 'scrambled' layout without augmentation, so that the source fits its scrambled images and the
    # target's classes lose the features that told them apart; fresh seeds (seed 0 chose the setting).
    # Vanilla only, to fit an hour on 2 cores; METHODS="vanilla ctc" adds CTC beside it.
    "control": Profile(model="resnet8", train_per_class="300", test_per_class="all", epochs=48, save_freq=4,
                       seeds="1 2 3 4", lr=0.05, batch=64, nce_k=512, probe_epochs=100, probe_batch=128,
                       mine_hidden=64, mine_batch=250, xt_iters="300", ty_iters="400", xt_lr="5e-4", ty_lr="1e-3",
                       jobs=2, mine_protocols="", tasks="scrambled", methods="vanilla", probes="adabn",
                       train_args="--aug mine", geometry_args="--rows 2500"),
    # The whole of both halves of CIFAR-10, the paper's model, epochs, probe and MINE settings
    # (MINE batch: half the 5,000 test images of a task, as the reference's 5,000 of 10,000).
    "gpu": Profile(model="resnext32_16x4d", train_per_class="all", test_per_class="all", epochs=200, save_freq=10,
                   seeds="0 1 2 3", lr=0.05, batch=64, nce_k=16384, probe_epochs=30, probe_batch=512, mine_hidden=1024,
                   mine_batch=2500, xt_iters="1e+4", ty_iters="2e+4", xt_lr="8e-5", ty_lr="1e-5", jobs=1),
}

# Seconds per unit of work, for the plan's time estimate: per 1000 training images and epoch
# (vanilla; CTC costs ~30% more), per 1000 images through a frozen backbone, per MINE iteration
# of one checkpoint at the profile's critic size (I(X;T)'s scales with batch x hidden), per step.
# cpu/smoke: wall-clock seconds measured with OMP_NUM_THREADS=1 on 2 cores shared with other
# jobs (about 0.7 of a core per process; dedicated cores are faster); gpu: from the H200 rows
# of bench/BENCHMARKS.md for resnext32_16x4d (MINE there at batch 5000, an upper bound).
COSTS = {
    "smoke": {"train": 2.7, "forward": 1.0, "xt": 0.004, "ty": 0.004, "step": 1.5},
    "cpu": {"train": 2.7, "forward": 1.0, "xt": 0.016, "ty": 0.005, "step": 2.5},
    "control": {"train": 2.7, "forward": 1.0, "xt": 0.016, "ty": 0.005, "step": 2.5},
    "gpu": {"train": 0.2, "forward": 0.034, "xt": 0.0024, "ty": 0.0016, "step": 15.0},
}


# --------------------------------------------------------------------------- settings

def choose_profile(environ):
    if environ.get("STUDY_SMOKE", "0") not in ("", "0"):
        return "smoke"
    if environ.get("STUDY_PROFILE"):
        if environ["STUDY_PROFILE"] not in ("cpu", "control", "gpu"):
            raise util.UserError(f"STUDY_PROFILE must be cpu, control or gpu (or STUDY_SMOKE=1), got '{environ['STUDY_PROFILE']}'")
        return environ["STUDY_PROFILE"]
    # Asked in another process: this one forks the steps and must not initialise CUDA itself.
    found = subprocess.run([sys.executable, "-c", "import sys, torch; sys.exit(not torch.cuda.is_available())"],
                           capture_output=True)
    return "gpu" if found.returncode == 0 else "cpu"


def settings(name, environ):
    """The profile with the environment's overrides."""
    profile = PROFILES[name]
    overrides = {}
    for field in dataclasses.fields(profile):
        text = environ.get(field.name.upper())
        if text is None:
            continue
        kind = type(getattr(profile, field.name))
        try:
            overrides[field.name] = kind(text)
        except ValueError:
            raise util.UserError(f"{field.name.upper()}={text!r} is not a {kind.__name__}") from None
    chosen = dataclasses.replace(profile, **overrides)
    if chosen.epochs < 2 or chosen.save_freq < 1 or chosen.jobs < 1 or not chosen.seeds.split():
        raise util.UserError("EPOCHS must be at least 2, SAVE_FREQ and JOBS at least 1, SEEDS not empty")
    lengths = [chosen.epochs] + ([3 * chosen.epochs / 2] if "ctc" in chosen.methods.split() else [])
    if any(length % chosen.save_freq for length in lengths):
        which = "EPOCHS and CTC's 1.5 x EPOCHS" if len(lengths) > 1 else "EPOCHS"
        raise util.UserError(f"{which} ({', '.join(f'{length:g}' for length in lengths)}) must be multiples of "
                             f"SAVE_FREQ ({chosen.save_freq}), so that each run's last epoch has a checkpoint to analyse")
    for name, known in (("mine_protocols", MINE_PROTOCOLS), ("methods", METHODS), ("probes", study_report.PROBES)):
        unknown = set(getattr(chosen, name).split()) - set(known)
        if unknown:
            raise util.UserError(f"{name.upper()}: unknown {' '.join(sorted(unknown))} (known: {' '.join(known)})")
    if not chosen.methods.split():
        raise util.UserError(f"METHODS names no method (known: {' '.join(METHODS)})")
    real_study_data.counts(chosen.train_per_class, chosen.test_per_class, chosen.tasks)  # refuses what is not a count
    for field_name in ("xt_iters", "ty_iters", "xt_lr", "ty_lr"):  # strings, passed on as spelled ('1e+4')
        try:
            util.positive(float)(getattr(chosen, field_name))
        except argparse.ArgumentTypeError as err:
            raise util.UserError(f"{field_name.upper()}: {err}") from None
    return chosen


def ctc_epochs(epochs):
    """CTC's length for vanilla's `epochs`: stage one as long as vanilla's whole run, then half as
    long again in stage two (the paper's 200 and 300), so both methods compare at equal source epochs."""
    return 3 * epochs // 2


def task_sizes(s):
    """{(task, split): number of images} of the study's data."""
    return real_study_data.task_images(s.tasks, real_study_data.counts(s.train_per_class, s.test_per_class, s.tasks))


def nce_k(s):
    """CTC's negatives per sample: the profile's, at most the smallest pool of other-class training images,
    so that no sample's negatives repeat."""
    per_class = real_study_data.counts(s.train_per_class, s.test_per_class, s.tasks)["train"]
    sizes = [len(members) * per_class for members in real_study_data.LAYOUTS[s.tasks]["source"].values()]
    return min(s.nce_k, sum(sizes) - max(sizes))


# --------------------------------------------------------------------------- plan

def plan_text(profile_name, s):
    sizes = task_sizes(s)
    per_class = real_study_data.counts(s.train_per_class, s.test_per_class, s.tasks)
    seeds, protocols, methods, probes = s.seeds.split(), s.mine_protocols.split(), s.methods.split(), s.probes.split()
    epochs = {"vanilla": s.epochs, "ctc": ctc_epochs(s.epochs)}
    trained = len(seeds) * sum(epochs[m] for m in methods)  # epochs of training, all runs together
    checkpoints = trained // s.save_freq
    n_source, n_target = sizes["source", "train"] + sizes["source", "test"] / 3, sizes["target", "train"]
    cost = COSTS[profile_name]
    default = PROFILES[profile_name]
    xt_cost = cost["xt"] * (s.mine_batch * s.mine_hidden) / (default.mine_batch * default.mine_hidden)
    forward = {"train_bn": s.probe_epochs * (n_target + sizes["target", "test"]),
               "adabn": 2 * n_target + sizes["target", "test"]}
    minutes = {  # of one core (or one GPU)
        "training": trained * n_source / 1000 * cost["train"] * (1.15 if "ctc" in methods else 1) / 60,
        **{probe: checkpoints * forward[probe] / 1000 * cost["forward"] / 60 for probe in probes},
        "MINE": checkpoints * len(protocols) * 2 * (float(s.xt_iters) * xt_cost + float(s.ty_iters) * cost["ty"]) / 60,
        # at most: every test image through the backbone, and the pairwise terms (about 20 s at 10,000 rows)
        "geometry": checkpoints * sum((sizes[task, "test"] / 1000 * cost["forward"]
                                       + 20 * (sizes[task, "test"] / 10000) ** 2) for task in ("source", "target")) / 60,
        "step starts": len(seeds) * len(methods) * (3 + len(probes) + 4 * len(protocols)) * cost["step"] / 60,
    }
    lanes = min(s.jobs, len(seeds))
    busiest = -(-len(seeds) // lanes) / len(seeds)  # share of the work in the lane with the most seeds
    runs = " and ".join(f"{'vanilla' if m == 'vanilla' else 'CTC'} {epochs[m]} epochs" for m in methods)
    ctc = (f" (CTC stage two from epoch {s.epochs + 1}, {nce_k(s)} NCE negatives)" if "ctc" in methods else "")
    return "\n".join([
        f"plan ({profile_name} profile): {s.model}, tasks '{s.tasks}': {sizes['source', 'train']} source and "
        f"{sizes['target', 'train']} target training images ({per_class['train']} per class), "
        f"{sizes['source', 'test']} and {sizes['target', 'test']} test images; seeds {' '.join(seeds)}, lr {s.lr}, "
        f"batch {s.batch}",
        f"  {runs}{ctc}, a checkpoint every {s.save_freq}: {checkpoints} checkpoints in all",
        f"  every checkpoint: {' and '.join(probes) or 'no'} probes on the target ({s.probe_epochs} epochs, batch "
        f"{s.probe_batch}); MINE I(X;T) and I(T;Y) on source and target test images, "
        f"protocols: {' '.join(protocols) or 'none'}",
        f"  MINE critic: hidden {s.mine_hidden}, batch {s.mine_batch}, I(X;T) {s.xt_iters} iterations at lr "
        f"{s.xt_lr}, I(T;Y) {s.ty_iters} at lr {s.ty_lr}",
        f"  estimated time: {sum(minutes.values()) * busiest:.0f} min with {lanes} parallel lane(s) ("
        + ", ".join(f"{part} {value:.1f}" for part, value in minutes.items()) + " min of one process)",
    ])


# --------------------------------------------------------------------------- steps

def vanilla_argv(s, seed):
    return ["--epochs", str(s.epochs), "--dataset", SOURCE, "--model", s.model, "--weight_decay", "0.0005",
            "--momentum", "0.9", "--learning_rate", str(s.lr), "--batch_size", str(s.batch),
            "--save_freq", str(s.save_freq), "--seed", seed, "--trial", f"s{seed}", "--note", "vanilla",
            "--num_workers", "0", "--print_freq", "100000", *shlex.split(s.train_args)]


def ctc_argv(s, seed):
    """The transferability preset (-a 0.5 ... --nce_t 0.10) on the paper's schedule: stage one for
    vanilla's epochs, stage two for half as many again."""
    return ["--epochs", str(ctc_epochs(s.epochs)), "--dataset", SOURCE, "--model", s.model, "--momentum", "0.9",
            "--learning_rate", str(s.lr), "--batch_size", str(s.batch), "--weight_decay", "0.0005",
            "--weight_decay_coef", "2.0", "--stage_two_epoch", str(s.epochs), "-a", "0.5", "-b", "1.0",
            "--instance_t", "0.10", "--instance_m", "0.9", "--nce_t", "0.10", "--nce_m", "0.9",
            "--nce_k", str(nce_k(s)), "--update_memory_bank", "--save_freq", str(s.save_freq), "--seed", seed,
            "--note", f"ctc_s{seed}", "--num_workers", "0", "--print_freq", "100000", *shlex.split(s.train_args)]


def run_name(script, argv):
    """The run folder the training script trains into with these arguments, asked of the script."""
    module = importlib.import_module(script)
    return module.run_name(module.parse_option(argv))


@dataclasses.dataclass
class Step:
    name: str       # its log is logs/<name>.log
    script: str     # entry script module
    argv: list
    resumes: str = ""  # run folder: add --resume when it already holds a resumable checkpoint

    def arguments(self, model):
        if self.resumes and (Path("save/model") / self.resumes / f"{model}_last.pth").is_file():
            return [*self.argv, "--resume"]
        return self.argv


def analysis_steps(s, run):
    """transfer and MINE for every checkpoint of one run folder."""
    every = ["--model", s.model, "--ckpt_path", run, "--start_epoch", str(s.save_freq), "--skip", str(s.save_freq)]
    steps = [Step(f"transfer_{probe}_{run}", "transfer",
                  ["--source_dataset", SOURCE, "--target_dataset", TARGET, *every, "--epoch", str(s.probe_epochs),
                   "--batch", str(s.probe_batch), "--protocol", probe, *shlex.split(s.transfer_args)])
             for probe in s.probes.split()]
    steps += [Step(f"geometry_{Path(dataset).name}_{run}", "geometry",
                   ["--dataset", dataset, "--source_dataset", SOURCE, *every, *shlex.split(s.geometry_args)])
              for dataset in (SOURCE, TARGET)]
    for protocol in s.mine_protocols.split():
        flags, suffix = ([], "") if protocol == "reference" else (["--protocol", protocol], f"_{protocol}")
        for dataset in (SOURCE, TARGET):
            task = Path(dataset).name
            for mode, iters, lr in (("xt", s.xt_iters, s.xt_lr), ("ty", s.ty_iters, s.ty_lr)):
                steps.append(Step(f"mine_{mode}_{task}{suffix}_{run}", "mine",
                                  ["--mode", mode, "--dataset", dataset, "--source_dataset", SOURCE, *every,
                                   "--lr", lr, "--iter_num", iters, "--batch_size", str(s.mine_batch),
                                   "--hidden_size", str(s.mine_hidden), *flags, *shlex.split(s.mine_args)]))
    return steps


def seed_steps(s, seed):
    """([a run per method of METHODS], every step of one seed in order)."""
    trainers = {"vanilla": ("train_vanilla", vanilla_argv), "ctc": ("train_ctc", ctc_argv)}
    runs, steps = [], []
    for method in s.methods.split():
        script, argv = trainers[method][0], trainers[method][1](s, seed)
        runs.append(run_name(script, argv))
        steps.append(Step(f"train_{runs[-1]}", script, argv, resumes=runs[-1]))
    for run in runs:
        steps += analysis_steps(s, run)
    return runs, steps


def check_command_lines(steps):
    """Parse every step's arguments as its script will, before any work: a flag a script does not
    know (a typo in TRAIN_ARGS or MINE_ARGS) stops the study here, not hours later."""
    for step in steps:
        refused = io.StringIO()
        try:
            with contextlib.redirect_stderr(refused):
                importlib.import_module(step.script).parse_option(step.argv)
        except SystemExit:
            reason = re.sub(r"^error: |\s*\(see \S+ --help\)$", "", refused.getvalue().strip())
            raise util.UserError(f"{step.script}.py refuses the arguments of step {step.name}: {reason}") from None


# --------------------------------------------------------------------------- execution

def forked(function):
    """Exit code of function() run in a child process (its return value, or SystemExit's code)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the parents ignore Ctrl-C, a step stops on it
            code = function() or 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def run_step(step, model, logs):
    """Run one step with its output appended to logs/<name>.log; returns its exit code."""
    log = logs / f"{step.name}.log"
    argv = step.arguments(model)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(log, "a") as handle:
        handle.write(f"# {stamp} {step.script}.py {shlex.join(argv)}\n")
    print(f"==> {step.name}", flush=True)
    started = time.time()

    def call():
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        return util.run_main(lambda: importlib.import_module(step.script).main(argv))

    code = forked(call)
    with open(logs / "timing.tsv", "a") as handle:
        handle.write(f"{step.name}\t{time.time() - started:.1f}\t{code}\n")
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"FAILED ({'interrupted' if code == INTERRUPTED else f'exit code {code}'}): {step.name}, "
              f"logs/{log.name}:\n" + "\n".join(tail), file=sys.stderr, flush=True)
    return code


def run_lane(steps, model, logs):
    """Run steps in order and stop at the first that fails; returns its exit code (0: all done)."""
    for step in steps:
        if code := run_step(step, model, logs):
            return code
    return 0


def run_lanes(lanes, model, logs):
    """Run the lanes side by side, each in a process of its own; returns their exit codes."""
    if len(lanes) == 1:
        return [run_lane(lanes[0], model, logs)]
    pids = []
    for steps in lanes:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_lane(steps, model, logs)
            finally:
                os._exit(code)
        pids.append(pid)
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]


# --------------------------------------------------------------------------- main

def parse_args(argv):
    parser = util.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=None, help="CIFAR-10 JPEG archive (default: STUDY_ARCHIVE, then "
                        f"{real_study_data.ARCHIVE}, else the CIFAR-10 download)")
    parser.add_argument("--plan", action="store_true", help="print the plan and its time estimate, run nothing")
    return parser.parse_args(argv)


def study(argv=None, environ=os.environ):
    args = parse_args(argv)
    # Resolved before the study changes into its folder, like a relative --archive.
    named = args.archive or environ.get("STUDY_ARCHIVE")
    archive = str(Path(named).resolve()) if named else None
    profile_name = choose_profile(environ)
    s = settings(profile_name, environ)
    plan = plan_text(profile_name, s)
    print(plan, flush=True)
    if args.plan:
        return
    folder = Path(environ.get("STUDY_DIR") or STUDY_ROOT / profile_name).resolve()
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # the scripts write save/ under the working directory
    util.atomic_write_text(logs / "plan.txt", plan + "\n")
    started = time.time()
    for script in ENTRY_SCRIPTS:  # imported once here; every forked step inherits them
        importlib.import_module(script)
    seeds = s.seeds.split()
    per_seed = [seed_steps(s, seed) for seed in seeds]
    check_command_lines([step for _, steps in per_seed for step in steps])

    done = real_study_data.prepare("data", s.train_per_class, s.test_per_class, archive, tasks=s.tasks)
    print(f"data: {folder / 'data'}/{{source,target}}, {real_study_data.describe(done['per_class'])}, "
          f"from {done['origin']}", flush=True)
    lanes = [[step for index, (_, steps) in enumerate(per_seed) if index % s.jobs == lane for step in steps]
             for lane in range(min(s.jobs, len(seeds)))]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the running steps; this process then reports
    codes = run_lanes(lanes, s.model, logs)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if INTERRUPTED in codes:
        raise KeyboardInterrupt
    if any(codes):
        raise util.UserError("the study stopped at a failed step (see above); rerun the same command to continue")

    groups = [item for index, method in enumerate(s.methods.split())
              for item in ["--group", "vanilla" if method == "vanilla" else "CTC", *[runs[index] for runs, _ in per_seed]]]
    study_report.study_report(study_report.parse_args(["--out", "report/real_study", *groups,
                                                       "--title", real_study_data.title(s.tasks)]))
    elapsed = time.time() - started
    with open(logs / "timing.tsv", "a") as handle:
        handle.write(f"whole study ({profile_name} profile)\t{elapsed:.1f}\t0\n")
    print(f"study finished in {elapsed // 60:.0f} min {elapsed % 60:.0f} s ({profile_name} profile): {folder / 'report'}")


def main(argv=None):
    return util.run_main(lambda: study(argv))


if __name__ == "__main__":
    main()
