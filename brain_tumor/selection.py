"""Comparing trained models and choosing the champion — on validation metrics only, never on the test set."""

from __future__ import annotations

import pandas as pd

from .errors import UserError

# metric name → (column in the comparison table, higher is better)
CHAMPION_METRICS = {
    "val_macro_f1": ("val_macro_f1", True),
    "val_accuracy": ("val_acc", True),
    "val_loss": ("val_loss", False),
}

COLUMNS = ["model", "family", "filters", "kernel", "dropout", "batch", "params_total", "params_trainable", "train_acc",
           "val_acc", "val_loss", "val_macro_f1", "val_macro_f1_low", "val_macro_f1_high", "val_glioma_recall",
           "test_acc", "test_macro_f1", "epochs_run", "train_seconds"]


def describe(training: dict) -> str:
    """The architecture column: the filters of a custom CNN, the backbone (and how much was fine-tuned) of a transfer
    model, the members of an ensemble, or a baseline's name."""
    spec = training["spec"]
    if spec["family"] == "custom_cnn":
        return "-".join(map(str, spec["filters"]))
    if spec["family"] == "transfer":
        tuned = training.get("fine_tune_layers") or 0
        return f"{spec['backbone']} ({f'top {tuned} layers fine-tuned' if tuned else 'frozen'})"
    return spec.get("description", spec["name"])


def glioma_recall(split_metrics: dict) -> float | None:
    """Recall of the glioma class (the class every published model misses on new images), if there is one."""
    name = next((n for n in split_metrics["per_class"] if n.startswith("glioma")), None)
    return split_metrics["per_class"][name]["recall"] if name else None


def comparison_row(training: dict, metrics: dict) -> dict:
    """One model's row: the seed's comparison columns and the validation interval, from its training record and its
    evaluation."""
    spec = training["spec"]
    interval = metrics["val"]["intervals"]["macro_f1"]
    return {
        "model": training["model"],
        "family": spec["family"],
        "filters": describe(training),
        "kernel": f"{spec['kernel_size']}x{spec['kernel_size']}" if spec.get("kernel_size") else "-",
        "dropout": spec.get("dropout"),
        "batch": training.get("batch_size"),
        "params_total": training["params"]["total"],
        "params_trainable": training["params"]["trainable"],
        "train_acc": metrics["train"]["accuracy"],
        "val_acc": metrics["val"]["accuracy"],
        "val_loss": metrics["val"]["log_loss"],
        "val_macro_f1": metrics["val"]["macro_f1"],
        "val_macro_f1_low": interval["low"],
        "val_macro_f1_high": interval["high"],
        "val_glioma_recall": glioma_recall(metrics["val"]),
        "test_acc": metrics["test"]["accuracy"] if "test" in metrics else None,
        "test_macro_f1": metrics["test"]["macro_f1"] if "test" in metrics else None,
        "epochs_run": training.get("epochs_run"),
        "train_seconds": round(training.get("train_seconds") or 0.0, 1),
    }


def choose_champion(rows: list[dict], metric: str = "val_macro_f1") -> tuple[str, str]:
    """The best model by a validation metric; ties go to fewer parameters. Returns (model, why)."""
    if metric not in CHAMPION_METRICS:
        raise UserError(f"Unknown champion metric '{metric}'; choose from {', '.join(CHAMPION_METRICS)} "
                        f"(test metrics are never used to choose).")
    if not rows:
        raise UserError("No trained models to choose from.")
    column, higher_is_better = CHAMPION_METRICS[metric]
    ranked = sorted(rows, key=lambda r: (-r[column] if higher_is_better else r[column], r["params_total"]))
    best = ranked[0]
    why = f"{best['model']} has the best {metric} ({best[column]:.4f})"
    if len(ranked) > 1:
        runner_up = ranked[1]
        if runner_up[column] == best[column]:
            why += (f", tied with {runner_up['model']} and chosen for fewer parameters "
                    f"({best['params_total']:,} vs {runner_up['params_total']:,})")
        else:
            why += f", ahead of {runner_up['model']} ({runner_up[column]:.4f})"
    return best["model"], why + "; test metrics were not used."


def comparison_table(rows: list[dict], champion: str) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.insert(1, "champion", table["model"] == champion)
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    def cell(value):
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, bool):
            return "**yes**" if value else ""
        return f"{value:,}" if isinstance(value, int) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.astype(object).itertuples(index=False)]
    return "\n".join(lines) + "\n"
