"""The run folder's `summary.md`: what was trained on what, the comparison, the champion and why, where things are."""

from __future__ import annotations

from pathlib import Path

from brain_tumor import files


def write_summary(run_dir: Path, config, results: dict, runs: list, offline: bool) -> Path:
    dataset = results["register_dataset"]
    champion = results["select_champion"]
    counts = dataset["counts"]
    sessions = sorted((run_dir / "clearml" / "offline").glob("*.zip")) if offline else []
    lines = [
        f"# Pipeline run: {run_dir.name}",
        "",
        "*Research prototype — not for clinical use.*",
        "",
        "## Data",
        f"- Source: {config.data or config.train_dir or config.dataset_id}"
        + (f" (test: {config.test_dir})" if config.test_dir else ""),
        f"- Dataset hash: `{dataset['dataset_hash']}`"
        + (f", ClearML dataset `{dataset['dataset_id'] or dataset['offline_record']}`"
           if dataset["dataset_id"] or dataset["offline_record"] else ""),
        "- Images per split: " + ", ".join(f"{split} {sum(c.values())}" for split, c in counts.items()),
        f"- Skipped files: {dataset['skipped']} (see data_report.json)",
        "- Split manifest: manifest.csv (near-duplicates never straddle train / validation / test)",
        "",
        "## Models",
        f"Image size {config.image_size}, seed {config.seed}, recipe {config.recipe}"
        + (" (the notebook's, exactly)." if config.recipe == "seed" else
           f": {config.optimizer}, learning rate {config.lr}, {config.schedule} schedule, {config.augment} "
           f"augmentation, label smoothing {config.label_smoothing}, up to {config.epochs} epochs, early stopping on "
           f"{config.monitor}" + (", cropped to the head" if config.crop else "")
           + (", per-image standardisation" if config.normalize else "") + "."),
        "",
        (run_dir / "comparison.md").read_text(),
        "## Champion",
        f"**{champion['champion']}** — {champion['why']}",
        "",
        "Saved as `champion.keras` (decision in `champion.json`).",
        "",
        "## Steps",
        "| step | status | step seconds | peak memory (MB) | log |",
        "|---|---|---|---|---|",
        *[f"| {r.name} | {r.status} | {r.seconds:.1f} | {r.peak_mb:.0f} | "
          f"{Path(r.log).relative_to(run_dir) if r.log else ''} |" for r in runs],
        "",
        "## Files",
        "- `models/<model>/`: model.keras (best epoch), history.json/.csv, training.json",
        "- `metrics/<model>.json`: train / validation / test metrics, confusion matrices, error analysis",
        "- `comparison.csv`, `comparison.md`, `champion.keras`, `champion.json`, `class_weights.json`",
        "- `steps/<step>/`: log.txt, call.json (arguments), result.json",
    ]
    if sessions:
        lines.append(f"- ClearML offline sessions ({len(sessions)}): `clearml/offline/*.zip`; import them into a "
                     f"server with `clearml-task --import-offline-session FILE.zip`")
    path = run_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_interrupted(run_dir: Path, runs: list, reason: str) -> Path:
    """summary.md of a run stopped part-way: what finished, what was stopped, and how to resume."""
    done = [r.name for r in runs if r.status in ("ran", "reused")]
    stopped = [r.name for r in runs if r.status == "interrupted"]
    lines = [f"# Pipeline run: {run_dir.name} — interrupted", "",
             f"The run was {reason}; every step process it had started was stopped.", "",
             f"- Finished (kept, reused by the next run): {', '.join(done) or 'none'}",
             f"- Stopped: {', '.join(stopped) or 'none'} (a training resumes from its last epoch's checkpoint)",
             f"- Not started: {', '.join(r.name for r in runs if r.status == 'not run') or 'none'}", "",
             "Run the same command again to resume."]
    path = run_dir / "summary.md"
    files.write_text(path, "\n".join(lines) + "\n")
    return path
