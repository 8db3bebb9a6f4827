"""scripts/plot_tradeoff.py on two hand-written run folders (vanilla-like and CTC-like).

Every expected number below is worked out by hand from the literal rows written here.
"""
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colors as mcolors
from matplotlib import image as mimage

from scripts import plot_tradeoff
from tests import warm_python

ROOT = Path(__file__).resolve().parents[1]
VANILLA = "resnet8_cifar100_lr_0.05_trial_0_vanilla"
CTC = "resnet8_cifar100_a:0.5_b:1.0_ctc"

# Vanilla: epoch 3 is logged twice (a resumed epoch); the second row (30) counts, so the
# best test accuracy is 52 at epoch 6, not 99 at epoch 3. The last line is cut short.
VANILLA_METRICS = """epoch,lr,train_loss,train_top1,train_top5,test_loss,test_top1,test_top5,seconds
1,0.01,4.1,5,20,4.0,10,30,1.0
2,0.02,3.5,15,40,3.4,20,45,1.0
3,0.03,3.0,25,55,3.0,99,99,1.0
3,0.03,3.0,25,55,3.0,30,60,1.0
4,0.04,2.6,35,65,2.7,40,70,1.0
5,0.05,2.3,45,72,2.5,45,75,1.0
6,0.05,2.0,55,80,2.3,52,80,1.0
7,0.04,1.8,62,85,2.4,51,80,1.0
8,0.03,1.6,70,90,2.5,50,79,1.0
9,0.02,1.
"""
# CTC: the contrastive columns are empty where they do not apply. Best test 55 at epoch 7.
CTC_METRICS = """epoch,lr,train_loss,train_top1,train_top5,test_loss,test_top1,test_top5,seconds,train_ce,train_instance,train_nce
1,0.05,9.0,5,20,4.0,12,30,1.0,4.0,5.0,
2,0.05,8.0,15,40,3.4,22,45,1.0,3.5,4.5,
3,0.04,7.0,25,55,3.0,33,60,1.0,3.0,4.0,
4,0.03,6.0,35,65,2.7,44,70,1.0,2.6,3.4,
5,0.05,5.0,45,72,2.5,48,75,1.0,2.3,,2.7
6,0.04,4.0,55,80,2.3,50,80,1.0,2.0,,2.0
7,0.03,3.5,62,85,2.2,55,82,1.0,1.8,,1.7
8,0.02,3.0,70,90,2.2,54,82,1.0,1.6,,1.4
"""


def transfer_row(epoch, best_acc, protocol="train_bn"):
    return json.dumps({"epoch": epoch, "protocol": protocol, "source_dataset": "cifar100",
                       "target_dataset": "cinic10", "best_acc": best_acc, "final_acc": best_acc - 0.01,
                       "acc_per_epoch": [best_acc - 0.05, best_acc], "seconds": 2.0})


def mine_row(epoch, mode, dataset, estimate):
    return json.dumps({"epoch": epoch, "mode": mode, "dataset": dataset, "estimate": estimate,
                       "iterations": 100, "lr": 1e-5, "seconds": 1.0})


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def write_vanilla(folder):
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text(VANILLA_METRICS)
    # Epoch 4 was forced to re-run: its last row (0.58) wins over the first (0.70), so the
    # best transfer is 0.62 at epoch 6, the last 0.58 at epoch 8: drop 4.00 points.
    write_lines(folder / "transfer_cinic10_train_bn.jsonl", [
        transfer_row(2, 0.50), transfer_row(4, 0.70), transfer_row(6, 0.62),
        '{"epoch": 8, "protocol": "train_bn", "best_a',
        transfer_row(4, 0.58), transfer_row(8, 0.58)])
    write_lines(folder / "transfer_cinic10_adabn.jsonl", [
        transfer_row(2, 0.40, "adabn"), transfer_row(8, 0.45, "adabn")])
    write_lines(folder / "mine_xt_cifar100.jsonl", [
        mine_row(e, "xt", "cifar100", v) for e, v in [(2, 3.0), (4, 3.5), (6, 3.2), (8, 2.9)]])
    write_lines(folder / "mine_ty_cinic10.jsonl", [
        mine_row(e, "ty", "cinic10", v) for e, v in [(2, 0.8), (4, 1.0), (6, 9.9), (6, 1.4), (8, 1.6)]])


def write_ctc(folder):
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text(CTC_METRICS)
    # Best 0.67 at epoch 4, last 0.655 at epoch 8: drop 1.50 points.
    write_lines(folder / "transfer_cinic10_train_bn.jsonl", [
        transfer_row(e, v) for e, v in [(2, 0.52), (4, 0.67), (6, 0.66), (8, 0.655)]])
    write_lines(folder / "mine_xt_cifar100.jsonl", [
        mine_row(e, "xt", "cifar100", v) for e, v in [(2, 3.1), (4, 3.6), (6, 3.7), (8, 3.8)]])
    write_lines(folder / "mine_ty_cinic10.jsonl", [
        mine_row(e, "ty", "cinic10", v) for e, v in [(2, 0.7), (4, 1.1), (6, 1.2), (8, 1.3)]])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_vanilla(root / "save" / "model" / VANILLA)
    write_ctc(root / "ctc_copy" / CTC)
    return root


def run_script(workspace, monkeypatch, *argv):
    """main(argv) from the workspace (so run names resolve under save/model/); stdout, stderr."""
    monkeypatch.chdir(workspace)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        plot_tradeoff.main(list(argv))
    return out.getvalue(), err.getvalue()


def table_rows(markdown):
    """{run name: [cells after the name]} of the markdown table."""
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] != "run":
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def default_output(workspace):
    monkeypatch = pytest.MonkeyPatch()
    try:
        stdout, stderr = run_script(workspace, monkeypatch, VANILLA, str(workspace / "ctc_copy" / CTC),
                                    "--out", str(workspace / "figs" / "cmp"))
    finally:
        monkeypatch.undo()
    return stdout, stderr, workspace / "figs" / "cmp.png", workspace / "figs" / "cmp.md"


def test_table_numbers_match_hand_computation(default_output):
    stdout, stderr, png, md = default_output
    text = md.read_text()
    #                      best test  epoch  best transfer  epoch  last transfer  epoch  drop
    assert table_rows(text) == {VANILLA: ["52.00", "6", "62.00", "6", "58.00", "8", "4.00"],
                                CTC: ["55.00", "7", "67.00", "4", "65.50", "8", "1.50"]}
    heading = text.splitlines()[0]
    assert "cinic10" in heading and "train_bn" in heading  # the default choice is stated
    assert "cinic10/adabn" in text  # and the unused alternative is pointed out
    assert f"wrote {png}" in stdout and f"wrote {md}" in stdout
    assert "transfer_cinic10_train_bn.jsonl:4" in stderr  # the damaged line was reported, then skipped


def test_png_is_a_real_figure_with_both_runs(default_output):
    _, _, png, _ = default_output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mimage.imread(png)
    height, width = pixels.shape[:2]
    assert width > 600 and height > 400
    # Four panels (test acc, transfer, two MINE series) on two columns: two rows of 6 x 3.6 inches.
    assert height / width == pytest.approx(2 * 3.6 / 12, abs=0.01)
    rgb = pixels[..., :3].reshape(-1, 3)
    for color in ("C0", "C1"):  # one line colour per run
        assert (np.abs(rgb - mcolors.to_rgb(color)).max(axis=1) < 0.02).sum() > 200
    assert not list(png.parent.glob(".*.tmp"))


def test_panels_use_last_row_and_skip_missing_series(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    runs = [plot_tradeoff.load_run(plot_tradeoff.resolve_run_folder(VANILLA), VANILLA)]
    choice = plot_tradeoff.choose_transfer(runs, None, None)
    assert choice == ("cinic10", "train_bn")
    panels = plot_tradeoff.panels(runs, choice)
    assert [p.title for p in panels] == ["Source test accuracy", "Transfer to cinic10 (train_bn)",
                                         "I(X;T) on cifar100", "I(T;Y) on cinic10"]
    assert panels[0].by_run[VANILLA][3] == 30.0
    assert panels[1].by_run[VANILLA] == pytest.approx({2: 50.0, 4: 58.0, 6: 62.0, 8: 58.0})
    assert panels[3].by_run[VANILLA] == {2: 0.8, 4: 1.0, 6: 1.4, 8: 1.6}
    # A run with only a MINE file: the accuracy and transfer panels have no data and go.
    only_mine = plot_tradeoff.Run("m", mine={("ty", "cifar100"): {2: 0.5}})
    assert [p.title for p in plot_tradeoff.panels([only_mine], None)] == ["I(T;Y) on cifar100"]


def test_heldout_mine_files_are_their_own_series(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    write_lines(folder / "mine_xt_cifar100.jsonl", [mine_row(2, "xt", "cifar100", 5.0)])
    write_lines(folder / "mine_xt_cifar100_heldout.jsonl", [mine_row(2, "xt", "cifar100", 0.4)])
    write_lines(folder / "mine_ty_folder-my_heldout_set.jsonl", [mine_row(2, "ty", "folder:x", 0.7)])
    run = plot_tradeoff.load_run(folder, "run")
    assert run.mine == {("xt", "cifar100"): {2: 5.0}, ("xt", "cifar100 (heldout)"): {2: 0.4},
                        ("ty", "folder-my_heldout_set"): {2: 0.7}}


def test_mine_below_its_own_i_ty_is_flagged_and_geometry_gets_panels(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    # On cifar100: I(X;T) 0.9 >= 0.5 at epoch 2, 0.4 < 0.6 at 4 and 0.3 < 0.7 at 6 (held-out protocol:
    # 0.2 < 0.3 at 2); on cinic10 only I(T;Y), nothing to compare.
    write_lines(folder / "mine_xt_cifar100.jsonl", [mine_row(e, "xt", "cifar100", v) for e, v in
                                                    [(2, 0.9), (4, 0.4), (6, 0.3)]])
    write_lines(folder / "mine_ty_cifar100.jsonl", [mine_row(e, "ty", "cifar100", v) for e, v in
                                                    [(2, 0.5), (4, 0.6), (6, 0.7)]])
    write_lines(folder / "mine_xt_cifar100_heldout.jsonl", [mine_row(2, "xt", "cifar100", 0.2)])
    write_lines(folder / "mine_ty_cifar100_heldout.jsonl", [mine_row(2, "ty", "cifar100", 0.3)])
    write_lines(folder / "mine_ty_cinic10.jsonl", [mine_row(2, "ty", "cinic10", 9.0)])
    write_lines(folder / "geometry_cifar100.jsonl", [json.dumps(
        {"epoch": e, "nc1": 1 / e, "effective_rank": 10.0 - e,
         "information": [{"noise": 0.25, "i_xt": 5.0, "i_ty": 1.0}, {"noise": 0.5, "i_xt": 3.0 - e / 10, "i_ty": 0.5}]})
        for e in (2, 4)])
    run = plot_tradeoff.load_run(folder, "run")
    assert plot_tradeoff.dpi_violations(run) == {"cifar100": [4, 6], "cifar100 (heldout)": [2]}
    # the figure shows the middle default noise level, 0.5
    assert run.geometry[("i_xt", "cifar100")] == pytest.approx({2: 2.8, 4: 2.6}) and run.noise == {"cifar100": 0.5}
    titles = [panel.title for panel in plot_tradeoff.panels([run], None)]
    assert titles[-4:] == ["NC1 on cifar100", "Effective rank on cifar100", "I(X;T_s) on cifar100, s = 0.5",
                           "I(T_s;Y) on cifar100, s = 0.5"]
    plot_tradeoff.main([str(folder), "--out", str(tmp_path / "out")])
    text = (tmp_path / "out.md").read_text()
    assert "- run: **MINE I(X;T) below I(T;Y) on cifar100 at epoch(s) 4, 6: violates the data-processing " \
           "inequality**" in text
    assert "on cifar100 (heldout) at epoch(s) 2:" in text and "cinic10 at" not in text
    assert (tmp_path / "out.png").stat().st_size > 10_000


def test_protocol_flag_picks_another_file(workspace, monkeypatch, tmp_path):
    stdout, _ = run_script(workspace, monkeypatch, VANILLA, str(workspace / "ctc_copy" / CTC),
                           "--protocol", "adabn", "--out", str(tmp_path / "adabn"))
    text = (tmp_path / "adabn.md").read_text()
    assert "adabn" in text.splitlines()[0]
    # Vanilla adabn: 0.40 at 2, 0.45 at 8; the CTC run has no adabn file: dashes.
    assert table_rows(text) == {VANILLA: ["52.00", "6", "45.00", "8", "45.00", "8", "0.00"],
                                CTC: ["55.00", "7", "-", "-", "-", "-", "-"]}
    assert (tmp_path / "adabn.png").stat().st_size > 10_000


def test_default_choice_and_file_names():
    def runs_with(*keys):
        return [plot_tradeoff.Run("r", transfer={key: {2: 0.5} for key in keys})]
    choose = plot_tradeoff.choose_transfer
    both = runs_with(("cinic10", "adabn"), ("cinic10", "train_bn"), ("cifar10", "train_bn"))
    assert choose(both, None, None) == ("cifar10", "train_bn")
    assert choose(both, "cinic10", None) == ("cinic10", "train_bn")
    assert choose(runs_with(("stl10", "frozen"), ("cinic10", "adabn")), None, None) == ("cinic10", "adabn")
    assert choose([plot_tradeoff.Run("r")], None, None) is None
    with pytest.raises(plot_tradeoff.util.UserError, match="cinic10/adabn"):
        choose(both, None, "frozen")
    match = plot_tradeoff.TRANSFER_FILE.fullmatch("transfer_folder-my_set_train_bn.jsonl")
    assert (match["target"], match["protocol"]) == ("folder-my_set", "train_bn")
    match = plot_tradeoff.TRANSFER_FILE.fullmatch("transfer_cifar10_adabn_amp.jsonl")  # transfer.py --amp
    assert (match["target"], match["protocol"]) == ("cifar10", "adabn_amp")
    assert choose(runs_with(("cifar10", "adabn_amp"), ("cifar10", "train_bn")), None, None) == ("cifar10", "train_bn")
    assert plot_tradeoff.run_names([Path("a/x"), Path("b/x"), Path("c/y")]) == ["a/x", "b/x", "y"]


def test_folder_without_results_is_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "ckpt_epoch_2.pth").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        plot_tradeoff.main([str(empty), "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{empty} holds no metrics.csv" in err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.md").exists()


def test_unknown_folder_from_the_command_line(tmp_path):
    result = warm_python.run([ROOT / "scripts" / "plot_tradeoff.py", "no_such_run"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'no_such_run' not found" in result.stderr
    assert not (tmp_path / "tradeoff.png").exists()
