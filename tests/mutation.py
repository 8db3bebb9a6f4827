"""Mutation check: does the test suite notice a plausible one-line mistake?

    .venv/bin/python tests/mutation.py              # every mutation, a table at the end
    .venv/bin/python tests/mutation.py --list       # the mutations, and whether each still applies
    .venv/bin/python tests/mutation.py --only alpha beta --timeout 300
    .venv/bin/python tests/mutation.py --only "top-5" --tests test_train.py   # does this file kill it?

Each mutation replaces one fragment of one line of a project file with a plausible slip (a
weight dropped, a mode flipped, a flag not passed on). For each,
the project is copied without .venv, .git, data and run folders, the mutation is applied
to the copy, and the test files that cover the mutated file run there (stopping at the
first failure): 'killed' when a test fails, 'survived' when they all pass. The working
tree is never touched. A survivor is a test to write, or a mutation that changes nothing
anyone could observe (then say why in SURVIVORS_THAT_DO_NOT_MATTER).

Not collected by pytest (the file name does not start with test_). Most mutations are
killed within seconds; a survivor runs all its covering files, and the whole list takes
about 20 minutes on 2 CPU cores (--only picks mutations by name). With --baseline the
unmutated copy runs every covering file first: a 'survived' verdict means something only
if those pass unmutated.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "data", "save", "demo", "study", "__pycache__", ".pytest_cache",
                                     ".ruff_cache", "*.pyc")

# The test files that cover each project file, most direct first (pytest stops at the first failure).
COVERING = {
    "helper/loops.py": ["test_wiring.py", "test_train.py", "test_train_ctc.py", "test_steps.py", "test_faults.py",
                        "test_ctc_ddp.py"],
    "helper/ctc.py": ["test_ctc.py", "test_train_ctc.py", "test_ctc_ddp.py"],
    "helper/steps.py": ["test_wiring.py", "test_steps.py", "test_train.py", "test_faults.py"],
    "helper/session.py": ["test_wiring.py", "test_train.py", "test_steps.py", "test_faults.py", "test_ctc_ddp.py"],
    "helper/precision.py": ["test_wiring.py", "test_steps.py", "test_transfer.py", "test_mine_wiring.py"],
    "helper/run.py": ["test_train.py", "test_train_ctc.py", "test_faults.py", "test_wiring.py"],
    "helper/results.py": ["test_transfer.py", "test_mine_script.py", "test_faults.py"],
    "helper/transfer.py": ["test_transfer.py", "test_wiring.py", "test_gray_targets.py"],
    "helper/features.py": ["test_mine.py", "test_mine_wiring.py", "test_transfer.py", "test_mine_script.py",
                           "test_geometry_script.py"],
    "helper/mine/critic.py": ["test_mine_wiring.py", "test_mine.py", "test_mine_heldout.py", "test_mine_script.py"],
    "helper/mine/calibration.py": ["test_faults.py", "test_mine_script.py", "test_mine.py", "test_mine_heldout.py"],
    "helper/mine/heldout.py": ["test_mine_heldout.py"],
    "helper/mine/report.py": ["test_mine_heldout.py", "test_mine_script.py"],
    "util.py": ["test_util.py", "test_faults.py", "test_train.py"],
    "train_vanilla.py": ["test_wiring.py", "test_train.py", "test_faults.py", "test_steps.py"],
    "train_ctc.py": ["test_wiring.py", "test_train_ctc.py", "test_faults.py", "test_ctc_ddp.py"],
    "dataset/gpu.py": ["test_ctc_ddp.py", "test_gpu_loader.py"],
    "dataset/arrays.py": ["test_ctc_ddp.py", "test_dataset.py"],
    "transfer.py": ["test_wiring.py", "test_transfer.py", "test_faults.py"],
    "mine.py": ["test_mine_wiring.py", "test_mine_script.py", "test_faults.py"],
    "helper/geometry/measures.py": ["test_geometry.py", "test_geometry_script.py"],
    "helper/geometry/information.py": ["test_geometry.py", "test_geometry_script.py"],
    "helper/geometry/calibration.py": ["test_geometry.py", "test_geometry_script.py"],
    "helper/geometry/report.py": ["test_geometry_script.py"],
    "geometry.py": ["test_geometry_script.py"],
    "scripts/run_paper.sh": ["test_pipeline.py"],
    "scripts/study_report.py": ["test_real_study.py"],
    "scripts/study_statistics.py": ["test_study_statistics.py", "test_real_study.py"],
    "scripts/real_study.py": ["test_real_study.py"],
    "scripts/plot_tradeoff.py": ["test_plot_tradeoff.py"],
}


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str        # a fragment of one line, found exactly once in the file (or the `nth` occurrence)
    new: str
    nth: int = None

    def apply(self, root):
        """Mutate the file under `root`; None, or why the mutation no longer applies."""
        path = root / self.file
        text = path.read_text()
        count = text.count(self.old)
        if count == 0:
            return "fragment not found (the code changed: update the mutation)"
        if count > 1 and self.nth is None:
            return f"fragment found {count} times (give nth)"
        start = -1
        for _ in range((self.nth or 0) + 1):
            start = text.index(self.old, start + 1)
        path.write_text(text[:start] + self.new + text[start + len(self.old):])
        return None


M = Mutation
MUTATIONS = [
    # --- wiring: values that must reach the optimizer, the loss and the estimator
    M("lr and weight decay never reach the optimizer", "helper/steps.py",
      'group["lr"], group["weight_decay"] = lr, weight_decay', 'group.setdefault("lr", lr)'),
    M("alpha does not weight the instance loss", "helper/loops.py", "ce + self.opts.alpha * instance", "ce + instance"),
    M("beta does not weight the NCE loss", "helper/loops.py", "ce + self.opts.beta * nce", "ce + nce"),
    M("mine.py ty pairs features with another image's label", "mine.py",
      "[torch.as_tensor(labels, device=device)]", "[torch.as_tensor(labels, device=device).roll(1)]"),
    M("mine.py xt pairs images with another image's features", "mine.py",
      "info.std, device).flatten(1)", "info.std, device).flatten(1).roll(1, 0)"),
    M("top-5 computed as top-2", "helper/loops.py", "topk(min(5, output.logits.shape[1])",
      "topk(min(2, output.logits.shape[1])"),
    M("test pass in train mode", "helper/loops.py", "    model.eval()\n    meters", "    model.train()\n    meters"),
    # --- MINE
    M("MINE gradient without the moving-average correction", "helper/mine/critic.py",
      "loss = -(mean_joint - log_mean_exp * ratio)", "loss = -(mean_joint - log_mean_exp)"),
    M("MINE moving-average rate 0.1", "helper/mine/critic.py", "MA_RATE = 0.01 ", "MA_RATE = 0.1 "),
    M("MINE ratio against the previous average", "helper/mine/critic.py",
      "ratio = torch.exp(log_mean_exp_const - log_ma_next)", "ratio = torch.exp(log_mean_exp_const - log_ma)"),
    M("MINE joint batch pairs different rows", "helper/mine/critic.py",
      "torch.cat((draws[0], draws[2]))", "torch.cat((draws[1], draws[2]))"),
    M("mine.py features in float32 under --amp", "mine.py",
      "source_classes, images, info, device, args.amp)\n", "source_classes, images, info, device, False)\n"),
    M("mine.py --eval_fraction 1 accepted", "mine.py", "0 <= args.eval_fraction < 1", "0 <= args.eval_fraction <= 1"),
    M("held-out protocol trains on the held-out rows too", "helper/mine/heldout.py",
      "training = CriticTraining(a, b, train_rows,", "training = CriticTraining(a, b, rows,"),
    M("held-out estimate not smoothed", "helper/mine/heldout.py", "return sum(values) / len(values)",
      "return values[-1]"),
    M("held-out protocol never stops", "helper/mine/heldout.py",
      "return iteration >= self.patience and iteration - self.iterations[self.best] >= self.patience",
      "return False"),
    M("jackknife without its (G - 1) factor", "helper/mine/critic.py", "return ((groups - 1) / groups * spread).sqrt()",
      "return (1 / groups * spread).sqrt()"),
    M("held-out marginal pairs cross groups", "helper/mine/critic.py",
      "starts[group] + sizes[group], starts[group], following)", "starts[group] + sizes[group], 0, following)"),
    M("mine.py --protocol heldout runs the reference protocol", "helper/mine/report.py",
      'if opts.protocol == "heldout":', 'if opts.protocol == "none":', nth=0),
    M("every ValueError inside an estimator becomes a one-line user error", "helper/mine/report.py",
      "except critic.MineInputError as err:", "except ValueError as err:"),
    M("--eval_every and --patience never reach the held-out protocol", "helper/mine/report.py",
      "estimate_mi_heldout(a, b, eval_every=opts.eval_every, patience=opts.patience, **common)",
      "estimate_mi_heldout(a, b, **common)"),
    M("MINE marginal side drawn from every row, held-out ones too", "helper/mine/critic.py",
      "draws = [train_rows[draw] for draw in draws]", "draws = [train_rows[draw] for draw in draws[:2]] + [draws[2]]"),
    M("held-out rows do not record eval_every", "helper/mine/report.py", ', "eval_every": opts.eval_every}', "}"),
    M("calibration accepts rho = 1", "helper/mine/calibration.py", "-1 < rho < 1", "-1 <= rho <= 1"),
    M("feature extraction in train mode", "helper/features.py",
      "return in_channels_last(extractor.eval(), amp)", "return in_channels_last(extractor.train(), amp)"),
    # --- geometry: closed-form measures, noisy-feature information, geometry.py
    M("effective rank from squared singular values", "helper/geometry/measures.py",
      "p = singular / singular.sum()", "p = singular ** 2 / (singular ** 2).sum()"),
    M("NC1 with Sigma_B not divided by C", "helper/geometry/measures.py",
      "sigma_b = between.T @ between / len(classes)", "sigma_b = between.T @ between"),
    M("CDNV without the 1/2", "helper/geometry/measures.py",
      "(variance[i] + variance[j]) / (2 * distance)", "(variance[i] + variance[j]) / distance"),
    M("CDNV class variance over every row", "helper/geometry/measures.py",
      "variance = spread / counts", "variance = spread / len(t)"),
    M("R^2 all pairs weighted by class size", "helper/geometry/measures.py",
      "total = 1 - (means.mean(0) ** 2).sum()", "total = 1 - (unit.mean(0) ** 2).sum()"),
    M("noise sigma = s without the relative scale", "helper/geometry/information.py",
      "scale = feature_scale(t) if relative else 1.0", "scale = 1.0"),
    M("antithetic sign never flipped", "helper/geometry/information.py",
      "ANTITHETIC = (1, -1)", "ANTITHETIC = (1, 1)"),
    M("own-class slice off by one", "helper/geometry/information.py",
      "columns = slice(*own_class)", "columns = slice(own_class[0], own_class[1] - 1)"),
    M("held-out I(T_s;Y) with the row's own term", "helper/geometry/information.py",
      "heldout = heldout + (own_others - others - log_prior)", "heldout = heldout + (own - everything - log_prior)"),
    M("a block of rows runs past its class", "helper/geometry/information.py",
      "rows = slice(start, min(start + block_rows, last))", "rows = slice(start, min(start + block_rows, n))"),
    M("classes truth without the within-class variance", "helper/geometry/calibration.py",
      "spread = 1 + noise ** 2", "spread = noise ** 2"),
    M("geometry.py --rows subset not fixed by --seed", "geometry.py",
      "torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed))",
      "torch.randperm(len(labels))"),
    M("an unreadable checkpoint skipped without a non-zero exit", "helper/features.py",
      "            failed.append(epoch)\n", "            pass\n"),
    M("mine.py groups only the first --batch_ckpts checkpoints", "mine.py",
      "    while group := [", "    if group := ["),
    M("geometry.py --noise not passed on", "geometry.py",
      "noisy_information(features, labels.to(device), args.noise, seed=args.seed)",
      "noisy_information(features, labels.to(device), DEFAULT_NOISE, seed=args.seed)"),
    M("geometry TensorBoard tag without the data set", "helper/geometry/report.py",
      'writer.add_scalar(f"geometry/{key}_{tag}", row[key], epoch)',
      'writer.add_scalar(f"geometry/{key}", row[key], epoch)'),
    # --- training loops and methods
    M("warm-up one epoch late", "helper/loops.py", "base_lr * epoch / warmup_epochs",
      "base_lr * (epoch - 1) / warmup_epochs"),
    M("vanilla cosine over epochs instead of epochs + 1", "helper/loops.py",
      "math.pi * epoch / (epochs + 1)", "math.pi * epoch / epochs"),
    M("stage-1 weight decay coefficient kept in stage 2", "helper/loops.py",
      "weight_decay_coef if epoch <= self.opts.stage_two_epoch else 1.0",
      "weight_decay_coef if epoch <= self.opts.stage_two_epoch + 1 else 1.0"),
    M("CTC stage 2 starts one epoch early", "helper/loops.py", "self.stage = 1 if epoch <= self.opts.stage_two_epoch",
      "self.stage = 1 if epoch < self.opts.stage_two_epoch"),
    M("best checkpoint chosen by train accuracy", "helper/loops.py", 'run.save(epoch, model, test["top1"]',
      'run.save(epoch, model, train["top1"]'),
    M("epoch loss not weighted by batch size", "helper/loops.py", 'self._add("loss", output.loss * batch)',
      'self._add("loss", output.loss)'),
    M("training in eval mode", "helper/loops.py", "    model.train()\n    meters", "    model.eval()\n    meters"),
    M("gradients accumulate across steps", "helper/steps.py", "self.optimizer.zero_grad(set_to_none=True)",
      "pass", nth=0),
    M("captured SGD decays weights the wrong way", "helper/steps.py", "params, alpha=weight_decay)",
      "params, alpha=-weight_decay)"),
    # --- CTC under torchrun: every process holds the same memories, Z and info bank
    M("CTC stage-1 memory updated from the local batch only", "helper/ctc.py",
      "momentum_update(self.memory, *gather_rows(index, z), self.momentum)",
      "momentum_update(self.memory, index, z.detach(), self.momentum)"),
    M("CTC stage-2 memories updated from the local batch only", "helper/ctc.py",
      "index, v1_all, v2_all = gather_rows(index, v1, v2)", "index, v1_all, v2_all = index, v1.detach(), v2.detach()"),
    M("CTC Z not agreed: fixed from the local batch", "helper/ctc.py", "totals = sum_across(torch.stack(",
      "totals = world_size() * (torch.stack("),
    M("CTC info bank taken on rank 0 only", "helper/loops.py", "self.info_bank = self._frozen_copy(state)",
      "self.info_bank = self._frozen_copy(state) if not distributed.active() or "
      "torch.distributed.get_rank() == 0 else None"),
    M("CTC info bank keeps each process's own BatchNorm statistics", "helper/loops.py",
      "distributed.copy_from_first(list(state.values()))", "pass"),
    M("CTC stage-2 heads not averaged across processes", "helper/loops.py",
      "self.trained_ctc_loss = distribute(self.ctc_loss, sync_buffers=False)", "self.trained_ctc_loss = self.ctc_loss"),
    M("CTC repeated index: whichever write lands last wins", "helper/ctc.py",
      "l2_normalize(rows)[first_occurrence(index)]", "l2_normalize(rows)"),
    M("CTC memory refresh overwrites a sample met again", "helper/ctc.py",
      "torch.where(earlier, rows[index], new[first])", "new"),
    M("device loader: every process draws the same crops and negatives", "dataset/gpu.py",
      "self.draws.manual_seed(int(seeds[rank]))", "self.draws.manual_seed(int(seeds[0]))"),
    M("torch loader: every process reseeds numpy alike", "dataset/arrays.py",
      "np.random.seed(rank_seed(seed, self.shard[0]) % 2**32)", "np.random.seed(rank_seed(seed, 0) % 2**32)"),
    M("torch loader: workers of every process seeded alike", "dataset/arrays.py",
      "seed = rank_seed(torch.initial_seed(), rank)", "seed = rank_seed(torch.initial_seed(), 0)"),
    M("--nce_k equal to the smallest pool warned about", "train_ctc.py", "if nce_k > pool:", "if nce_k >= pool:"),
    M("--cuda_graph accepted under torchrun", "helper/session.py", "if opts.cuda_graph and self.world_size > 1:",
      "if False:"),
    # --- session, precision, run folder, results
    M("SGD without momentum", "helper/session.py", "momentum=o.momentum, weight_decay=o.weight_decay",
      "momentum=0.0, weight_decay=o.weight_decay"),
    M("--seed ignored", "helper/session.py", "util.set_seed(opts.seed)", "util.set_seed(0)"),
    M("a batch not divisible by the processes accepted", "helper/session.py",
      "if opts.batch_size % self.world_size:", "if False:"),
    M("each process takes the whole batch", "helper/session.py", "self.batch_size = opts.batch_size // self.world_size",
      "self.batch_size = opts.batch_size"),
    M("--amp fp16 runs bf16", "helper/precision.py", "dtype=self.dtype, cache_enabled",
      "dtype=torch.bfloat16, cache_enabled"),
    M("images not channels_last", "helper/precision.py", "in_channels_last(batch[0], self.channels_last)",
      "in_channels_last(batch[0], False)"),
    M("--amp of transfer and mine never autocasts", "helper/precision.py", "enabled=bool(amp))", "enabled=False)"),
    M("ckpt_epoch_E written one epoch off", "helper/run.py", "if epoch % save_freq == 0:",
      "if epoch % save_freq == 1:"),
    M("best accuracy is the last", "helper/run.py", "self.best_acc = max(self.best_acc, accuracy)",
      "self.best_acc = accuracy"),
    M("resume does not restore the RNG", "helper/run.py", 'set_rng_state(state["rng"])', "pass"),
    M("reruns redo every checkpoint", "helper/results.py", "done = set() if force else", "done = set() if True else"),
    M("shards skip checkpoints", "helper/results.py", "return items[index::count]", "return items[index::count + 1]"),
    M("train_bn probe in eval mode", "helper/transfer.py", "model.train()  # BatchNorm", "model.eval()  # BatchNorm"),
    M("cached features ignore --amp", "helper/transfer.py", "images.device, amp=amp)", "images.device, amp=False)"),
    # --- util and the scripts
    M("zero accepted as positive", "util.py", "if not value > 0:", "if not value >= 0:"),
    M("a user error exits 0", "util.py", "sys.exit(2)", "sys.exit(0)"),
    M("--min_lr_scale ignored", "train_vanilla.py", "args.epochs, args.min_lr_scale)", "args.epochs, 0.1)"),
    M("--stage_two_epoch equal to --epochs accepted", "train_ctc.py", "args.stage_two_epoch >= args.epochs",
      "args.stage_two_epoch > args.epochs"),
    M("transfer.py --amp not passed to the probe", "transfer.py", "amp=args.amp)", "amp=False)"),
    M("study: the t interval's variance over n seeds, not n - 1", "scripts/study_statistics.py",
      "/ (n - 1) / n)", "/ n / n)"),
    M("study: the last window one checkpoint short of the end", "scripts/study_statistics.py",
      "list(range(count - width, count))", "list(range(count - width - 1, count - 1))"),
    M("study: a fall declared when the mean is above zero", "scripts/study_statistics.py",
      "return self.low > 0", "return self.mean > 0"),
    M("study: the cross-fitted drop measured on the half that chose the peak", "scripts/study_statistics.py",
      "drops += [curve[peak] - curve[-1] for curve in measured]", "drops += [curve[peak] - curve[-1] for curve in chooses]"),
    M("study: CTC paired with another seed's vanilla run", "scripts/study_report.py",
      "pairs = list(zip(base_runs, other_runs))", "pairs = list(zip(base_runs, reversed(other_runs)))"),
    M("study: MINE's data-processing check never fires", "scripts/study_report.py",
      "below += xt[epoch] < ty[epoch]", "below += xt[epoch] < 0"),
    M("study: the last probe number reads the best epoch", "scripts/study_report.py",
      '"last": ("final_acc",', '"last": ("best_acc",'),
    M("study: CTC's stage two starts at two thirds of vanilla's epochs", "scripts/real_study.py",
      '"--stage_two_epoch", str(s.epochs)', '"--stage_two_epoch", str(2 * s.epochs // 3)'),
    M("study: --nce_k not capped by the negative pool", "scripts/real_study.py",
      "return min(s.nce_k, sum(sizes) - max(sizes))", "return s.nce_k"),
    M("plot_tradeoff: the data-processing flag compares I(X;T) with itself", "scripts/plot_tradeoff.py",
      'ty = run.mine.get(("ty", dataset)) if mode == "xt" else None', 'ty = xt if mode == "xt" else None'),
    M("run_paper.sh never resumes", "scripts/run_paper.sh", "&& echo --resume || true", "&& echo || true"),
]

# Mutations that survive on purpose, with the reason (printed beside them in the table).
SURVIVORS_THAT_DO_NOT_MATTER = {}


def run_tests(copy, tests, timeout):
    """(verdict, first failing test or '', seconds) of the test files in the copy."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *[f"tests/{t}" for t in tests]]
    started = time.time()
    try:
        result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", "", time.time() - started
    seconds = time.time() - started
    # A failing test or fixture kills the mutation; a file that no longer imports is an error
    # to look at (pytest's "ERROR tests/x.py", without a test name).
    failed = re.search(r"^(?:FAILED|ERROR) (\S+::\S+)", result.stdout, re.M)
    if result.returncode == 0:
        return "survived", "", seconds
    if result.returncode == 1 and failed:
        return "killed", failed.group(1), seconds
    tail = (result.stdout + result.stderr).strip().splitlines()
    return "error", tail[-1] if tail else f"exit code {result.returncode}", seconds


def fresh_copy(workdir):
    copy = Path(workdir) / "project"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)
    return copy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="run the mutations whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutations and whether each applies")
    parser.add_argument("--baseline", action="store_true", help="first run every covering file on the unmutated copy")
    parser.add_argument("--tests", nargs="+", default=None,
                        help="run these test files (or test ids) instead of the covering ones")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per mutation")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or any(word in m.name for word in args.only)]
    with tempfile.TemporaryDirectory(prefix="mutation-") as workdir:
        if args.list:
            copy = fresh_copy(workdir)
            for mutation in chosen:
                problem = mutation.apply(copy)
                print(f"{'ok' if problem is None else 'stale':6} {mutation.file:28} {mutation.name}"
                      + (f"  ({problem})" if problem else ""))
                copy = fresh_copy(workdir)
            return 0
        if args.baseline:
            files = args.tests or list(dict.fromkeys(t for m in chosen for t in COVERING[m.file]))
            verdict, failed, seconds = run_tests(fresh_copy(workdir), files, args.timeout * 4)
            print(f"baseline ({len(files)} files): {'pass' if verdict == 'survived' else verdict} {failed} "
                  f"{seconds:.0f} s", flush=True)
            if verdict != "survived":
                return 1
        rows = []
        for mutation in chosen:
            copy = fresh_copy(workdir)
            problem = mutation.apply(copy)
            if problem:
                verdict, failed, seconds = "stale", problem, 0.0
            else:
                verdict, failed, seconds = run_tests(copy, args.tests or COVERING[mutation.file], args.timeout)
            note = SURVIVORS_THAT_DO_NOT_MATTER.get(mutation.name, "") if verdict == "survived" else failed
            rows.append((mutation, verdict, note, seconds))
            print(f"{verdict:8} {seconds:6.0f} s  {mutation.file:28} {mutation.name}  {note}", flush=True)
    print("\n| mutation | file | verdict | killed by / why it may survive |\n|---|---|---|---|")
    for mutation, verdict, note, _ in rows:
        print(f"| {mutation.name} | {mutation.file} | {verdict} | {note} |")
    verdicts = ("killed", "survived", "timeout", "error", "stale")
    counts = {v: sum(1 for _, verdict, _, _ in rows if verdict == v) for v in verdicts}
    print("\n" + ", ".join(f"{count} {verdict}" for verdict, count in counts.items() if count))
    unexplained = [m for m, verdict, _, _ in rows if verdict != "killed" and m.name not in SURVIVORS_THAT_DO_NOT_MATTER]
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
