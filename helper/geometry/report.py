"""What geometry.py leaves behind for a checkpoint: the printed lines, the results row's file,
the TensorBoard scalars, and the series plots and tables read back from the rows.

    printed       `geometry of {model} of {epoch}-th epoch on {dataset}: effective rank ..., NC1 ...,
                  CDNV ..., R^2 ..., feature norm ...`, then one line of I(X;T_s) / I(T_s;Y) per noise level
    results file  <run folder>/geometry_{dataset}.jsonl: one row per checkpoint with the measures
                  (MEASURES) and `information`, a list of {noise, sigma, i_xt, i_ty, ...} per noise level
    TensorBoard   geometry/<measure>_<dataset> and geometry/I(X;T_s)_s<noise>_<dataset>,
                  geometry/I(T_s;Y)_s<noise>_<dataset> against source epoch
"""
import math

MEASURES = {"effective_rank": "effective rank", "nc1": "NC1", "cdnv": "CDNV", "class_separation": "R^2",
            "feature_norm": "feature norm"}
QUANTITIES = {"i_xt": "I(X;T_s)", "i_ty": "I(T_s;Y)"}


def results_file_name(dataset_tag):
    return f"geometry_{dataset_tag}.jsonl"


def describe(model, epoch, dataset, row):
    """The two printed lines of one checkpoint."""
    shown = ", ".join(f"{name} {row[key]:.4g}" for key, name in MEASURES.items())
    levels = ", ".join(f"s = {level['noise']:g}: {level['i_xt']:.3f} / {level['i_ty']:.3f}"
                       + (" (saturated)" if level["saturated"] else "") for level in row["information"])
    return [f"geometry of {model} of {epoch}-th epoch on {dataset}: {shown}",
            f"  I(X;T_s) / I(T_s;Y) (nats, noise s relative to the features' scale): {levels}"]


def write_tensorboard(writer, tag, epoch, row):
    for key in MEASURES:
        if math.isfinite(row[key]):
            writer.add_scalar(f"geometry/{key}_{tag}", row[key], epoch)
    for level in row["information"]:
        for key, name in QUANTITIES.items():
            writer.add_scalar(f"geometry/{name}_s{level['noise']:g}_{tag}", level[key], epoch)
    writer.flush()


def information_at(row, noise):
    """The `information` entry of a row at noise level `noise`, or None."""
    return next((level for level in row.get("information", []) if level.get("noise") == noise), None)
