"""Champion selection: on validation metrics only, ties to fewer parameters; the comparison table."""

import json

import pandas as pd
import pytest

from brain_tumor.errors import UserError
from brain_tumor.selection import COLUMNS, choose_champion, comparison_table, to_markdown
from steps.select_champion import select_champion


def row(model, val_f1, test_f1, params, val_loss=0.5, val_acc=0.8):
    return {"model": model, "family": "custom_cnn", "filters": "32-64-128", "kernel": "3x3", "dropout": 0.3,
            "batch": 32,
            "params_total": params, "params_trainable": params, "train_acc": 0.9, "val_acc": val_acc,
            "val_loss": val_loss, "val_macro_f1": val_f1, "test_acc": test_f1, "test_macro_f1": test_f1,
            "epochs_run": 3, "train_seconds": 1.0}


# cnn_a is best on the test set, cnn_c on validation: the champion must be cnn_c.
ROWS = [row("cnn_a", 0.80, 0.99, 1000), row("cnn_c", 0.90, 0.70, 2000), row("resnet50", 0.85, 0.95, 500)]


def test_the_champion_is_best_on_validation_not_on_test():
    champion, why = choose_champion(ROWS)
    assert champion == "cnn_c"
    assert "best val_macro_f1 (0.9000)" in why and "ahead of resnet50" in why and "test metrics were not used" in why


def test_ties_go_to_fewer_parameters():
    champion, why = choose_champion([row("cnn_a", 0.9, 0.5, 3000), row("cnn_b", 0.9, 0.4, 1000)])
    assert champion == "cnn_b"
    assert "tied with cnn_a" in why and "fewer parameters" in why


def test_other_validation_metrics_and_their_direction():
    rows = [row("a", 0.9, 0.9, 1, val_loss=0.7, val_acc=0.6), row("b", 0.5, 0.5, 1, val_loss=0.2, val_acc=0.7)]
    assert choose_champion(rows, "val_loss")[0] == "b"
    assert choose_champion(rows, "val_accuracy")[0] == "b"
    assert choose_champion(rows, "val_macro_f1")[0] == "a"


@pytest.mark.parametrize("metric", ["test_macro_f1", "test_acc", "accuracy"])
def test_test_metrics_cannot_be_chosen(metric):
    with pytest.raises(UserError, match="never used to choose"):
        choose_champion(ROWS, metric)


def test_table_and_markdown():
    table = comparison_table(ROWS, "cnn_c")
    assert list(table.columns) == ["model", "champion", *COLUMNS[1:]]
    assert table["champion"].tolist() == [False, True, False]
    markdown = to_markdown(table).splitlines()
    assert len(markdown) == 2 + len(ROWS)
    assert markdown[3].startswith("| cnn_c | **yes** | custom_cnn | 32-64-128 | 3x3 | 0.3 | 32 | 2,000 |")


def test_the_step_writes_table_and_champion(tmp_path):
    refs = {}
    for r in ROWS:
        path = tmp_path / f"{r['model']}.keras"
        path.write_bytes(r["model"].encode())
        refs[r["model"]] = str(path)
    decision = select_champion(ROWS, refs, [], str(tmp_path), "val_macro_f1", "Brain Tumor MRI", "if-better")
    assert decision["champion"] == "cnn_c" and decision["value"] == 0.9
    assert (tmp_path / "champion.keras").read_bytes() == b"cnn_c"
    recorded = json.loads((tmp_path / "champion.json").read_text())
    assert recorded["why"] == decision["why"] and recorded["promotion"]["why"] == "offline: no model registry"
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert table["model"].tolist() == ["cnn_a", "cnn_c", "resnet50"]
    assert table.loc[table["champion"], "model"].item() == "cnn_c"
    assert (tmp_path / "comparison.md").read_text().count("\n") == 2 + len(ROWS)


def test_the_step_on_a_fresh_agent_makes_its_own_run_folder(tmp_path, monkeypatch, capsys):
    models = tmp_path / "registry"
    models.mkdir()
    refs = {}
    for r in ROWS:
        (models / f"{r['model']}.keras").write_bytes(r["model"].encode())
        refs[r["model"]] = str(models / f"{r['model']}.keras")
    agent = tmp_path / "agent"
    agent.mkdir()
    monkeypatch.chdir(agent)  # nothing here: no run folder, no earlier step's files
    decision = select_champion(ROWS, refs, [], "runs/pipeline", "val_macro_f1", "Brain Tumor MRI", "if-better")
    assert decision["champion"] == "cnn_c"
    assert (agent / "runs" / "pipeline" / "comparison.csv").is_file()
    assert "No report.html here" in capsys.readouterr().out  # says why, and carries on
