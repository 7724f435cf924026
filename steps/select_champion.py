"""Step: choose the champion on a validation metric (never a test metric), write the comparison table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from brain_tumor.selection import CHAMPION_METRICS, choose_champion, comparison_table, to_markdown

from .registry import resolve_model
from .tracking import current_task, report_table


def select_champion(rows: list[dict], model_refs: dict, run_dir: str, metric: str = "val_macro_f1") -> dict:
    out = Path(run_dir)
    champion, why = choose_champion(rows, metric)
    table = comparison_table(rows, champion)
    table.to_csv(out / "comparison.csv", index=False)
    (out / "comparison.md").write_text(to_markdown(table))
    shutil.copyfile(resolve_model(model_refs[champion]), out / "champion.keras")
    column = CHAMPION_METRICS[metric][0]
    value = next(r[column] for r in rows if r["model"] == champion)
    decision = {"champion": champion, "metric": metric, "value": value, "why": why,
                "source": model_refs[champion], "path": str(out / "champion.keras")}
    (out / "champion.json").write_text(json.dumps(decision, indent=2))
    print(f"Champion: {why}")
    task = current_task()
    if task is not None:
        report_table("comparison", table)
        task.set_parameter("champion/model", champion)
    return decision
