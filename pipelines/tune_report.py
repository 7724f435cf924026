"""A study's results in its folder: trials.csv, best.yaml (a configuration file `run --config` takes) and
report.html (optimisation history, parameter importances, parallel coordinates, the best trial against the
runner-up with a paired bootstrap on the same validation images)."""

from __future__ import annotations

import base64
import html
import warnings
from pathlib import Path

from brain_tumor import files

from .config import PipelineConfig
from .search_space import Range

FIGURES = "figures"


def trial_rows(study, space: dict[str, Range]) -> list[dict]:
    rows = []
    for t in study.trials:
        status = "interrupted" if t.user_attrs.get("interrupted") else t.state.name.lower()
        rows.append({"number": t.number, "status": status,
                     "objective": t.value if t.state.name == "COMPLETE" else None,
                     "epochs_run": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
                     **{name: t.params.get(name) for name in space},
                     "note": "killed while running: its parameters ran again" if t.user_attrs.get("interrupted")
                     else t.user_attrs.get("why", "")})
    return rows


def ranked(study) -> list:
    """Complete trials, best first."""
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    maximize = study.direction.name == "MAXIMIZE"
    return sorted(complete, key=lambda t: (-t.value if maximize else t.value, t.number))


def best_config(study, config: PipelineConfig, objective: str) -> tuple[str, dict] | None:
    """best.yaml's text and values: the study's fixed training values with the best trial's parameters."""
    order = ranked(study)
    if not order:
        return None
    best = order[0]
    return best_text(config, objective, best.number, best.value, best.params)


def best_text(config: PipelineConfig, objective: str, trial, value: float, params: dict) -> tuple[str, dict]:
    """best.yaml for trial `trial` (its number, or how to name it) of objective `value`: `config`'s fixed training
    values with the trial's parameters (the local study and the server's write the same file)."""
    import yaml

    from .tune import BEST_KEYS

    values = config.replace(**params).values()
    chosen = {k: values[k] for k in BEST_KEYS}
    header = (f"# The best trial ({trial}) of the study in {Path(config.run_dir)}: {objective} {value:.4f} "
              f"on validation\n# (optimistic: chosen on that split). Start a pipeline from it:\n"
              f"#   brain-tumor run --config best.yaml --data ROOT\n")
    return header + yaml.safe_dump(chosen, sort_keys=False), chosen


def runner_up_margin(study, out: Path, objective: str) -> dict | None:
    """The best trial minus the runner-up, with a 95 % paired-bootstrap interval on the same validation images
    (as select_champion judges the champion's margin)."""
    import pandas as pd

    from brain_tumor.intervals import paired_difference

    order = ranked(study)
    if len(order) < 2:
        return None
    best, second = order[:2]
    paths = [out / "trials" / f"{t.number:04d}" / "val_predictions.csv" for t in (best, second)]
    if not all(p.is_file() for p in paths):
        return None
    a, b = (pd.read_csv(p).sort_values("file").reset_index(drop=True) for p in paths)
    if list(a["file"]) != list(b["file"]):
        return None
    names = sorted(set(a["true"]) | set(a["predicted"]) | set(b["predicted"]))
    index = {n: i for i, n in enumerate(names)}
    score = "accuracy" if objective == "val_accuracy" else "macro_f1"
    difference = paired_difference(a["true"].map(index).to_numpy(), a["predicted"].map(index).to_numpy(),
                                   b["predicted"].map(index).to_numpy(), names, score)
    return {"best": best.number, "runner_up": second.number, "metric": f"val_{score}", **difference,
            "distinguishable": difference["low"] > 0 or difference["high"] < 0}


def figures(study, folder: Path) -> dict[str, str]:
    """The study's figures as PNG files (name → path, or a sentence saying why there is none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as plots

    folder.mkdir(parents=True, exist_ok=True)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    made = {}
    wanted = {"history": (plots.plot_optimization_history, 1, "the optimisation history"),
              "importances": (plots.plot_param_importances, 2, "parameter importances"),
              "parallel": (plots.plot_parallel_coordinate, 2, "parallel coordinates")}
    for name, (plot, needed, what) in wanted.items():
        if len(complete) < needed:
            made[name] = f"No {what}: {len(complete)} complete trial(s), it needs {needed} or more."
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)  # a parameter with one value: flat axis limits
                axes = plot(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figure.set_size_inches(8, 4.5)
            figure.tight_layout()
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=90)
            plt.close(figure)
            made[name] = str(path)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:  # e.g. every trial with the same values
            made[name] = f"No {what}: {error}"
    return made


def importances(study) -> dict | str:
    import optuna

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return f"Parameter importances need 2 or more complete trials; this study has {len(complete)}."
    try:
        return optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as error:
        return f"Parameter importances could not be computed: {error}"


def _image(path: str) -> str:
    if not Path(path).is_file():
        return f"<p>{html.escape(path)}</p>"
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{Path(path).stem}" src="data:image/png;base64,{data}">'


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>No trials yet.</p>"
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else "" if v is None else html.escape(str(v))
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def conclusion(study, objective: str, margin: dict | None) -> str:
    order = ranked(study)
    if not order:
        return "No trial completed yet."
    best = order[0]
    text = (f"The best trial, {best.number}, scored {objective} {best.value:.4f} on the validation split. That score "
            f"is optimistic: the trial was chosen on that same split, so expect less on new images (the pipeline's "
            f"test split tells).")
    if margin is None:
        return text + " With fewer than two complete trials there is no runner-up to compare it with."
    verdict = ("distinguishable from" if margin["distinguishable"] else "within noise of")
    return text + (f" Its {margin['metric']} is {margin['difference']:+.3f} above the runner-up's (trial "
                   f"{margin['runner_up']}; 95 % paired-bootstrap interval {margin['low']:+.3f} to "
                   f"{margin['high']:+.3f} over the same validation images): {verdict} it.")


def write_results(study, out: Path, objective: str, space: dict[str, Range], config: PipelineConfig,
                  report: bool = True) -> dict | None:
    """trials.csv and best.yaml (after every trial), and report.html (`report`); returns best.yaml's values."""
    import pandas as pd

    rows = trial_rows(study, space)
    table = pd.DataFrame(rows, columns=["number", "status", "objective", "epochs_run", "seconds", *space, "note"])
    table.astype({"epochs_run": "Int64"}).to_csv(out / "trials.csv", index=False)  # whole epochs, blank when none
    best = best_config(study, config, objective)
    if best is not None:
        files.write_text(out / "best.yaml", best[0])
    if not report:
        return best and best[1]
    margin = runner_up_margin(study, out, objective)
    made = figures(study, out / FIGURES)
    weights = importances(study)
    importance = (_table([{"parameter": k, "importance": v} for k, v in weights.items()])
                  if isinstance(weights, dict) else f"<p>{html.escape(weights)}</p>")
    space_rows = [{"parameter": n, "range": r.describe()} for n, r in space.items()]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Study {html.escape(out.name)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}img{{max-width:100%}}</style></head><body>
<h1>Study: {html.escape(study.study_name)} in {html.escape(str(out))}</h1>
<h2>Conclusion</h2><p>{html.escape(conclusion(study, objective, margin))}</p>
<p>Best parameters: <code>best.yaml</code> (<code>brain-tumor run --config {html.escape(str(out / 'best.yaml'))}
--data ROOT</code>). The objective is read from validation only; the test split was never read while tuning.</p>
<h2>Search space</h2>{_table(space_rows)}
<h2>Optimisation history</h2>{_image(made['history'])}
<h2>Parameter importances</h2>{importance}{_image(made['importances'])}
<h2>Parallel coordinates</h2>{_image(made['parallel'])}
<h2>Trials</h2>{_table(rows)}
</body></html>"""
    files.write_text(out / "report.html", page)
    return best and best[1]
