"""The run's report: every section and figure, in the run folder and in ClearML, and report.html in a real browser."""

import base64
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ACCESS_MARKER, SECRET_MARKER
from PIL import Image

from brain_tumor.report import NOT_CLINICAL, SECTIONS, build_report
from brain_tumor.report_text import main_confusions

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def assert_non_blank(png: bytes, name: str) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, name
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, f"{name} looks blank"


TRAINED = ("cnn_a", "cnn_b", "resnet50")


def ensemble_built(run_dir: Path) -> bool:
    """The ensemble step builds one only when a mix beats the best model alone on validation."""
    return (run_dir / "models" / "ensemble" / "training.json").is_file()


def test_every_figure_is_written_decodes_and_is_not_blank(first_run):
    run_dir, _ = first_run
    report = run_dir / "report"
    expected = ["exploration/class_counts.png", "exploration/samples.png", "leakage/leakage_distances.png",
                "leakage/leakage_twins.png", "leakage/leakage_closest.png", "comparison/comparison.png",
                "comparison/curves_all.png", "comparison/custom_vs_transfer.png", "shortcuts/style_distributions.png"]
    for model in TRAINED:
        expected += [f"models/{model}/curves.png"]
    for model in TRAINED + (("ensemble",) if ensemble_built(run_dir) else ()):  # no external set: no external_*
        expected += [f"evaluation/{model}/confusion.png", f"evaluation/{model}/predictions.png",
                     f"evaluation/{model}/reliability.png", f"evaluation/{model}/background.png"]
    for name in expected:
        assert_non_blank((report / name).read_bytes(), name)
    assert sorted(str(p.relative_to(report)) for p in report.rglob("*.png")) == sorted(expected)
    for csv in ("exploration/class_counts.csv", "leakage/leakage_pairs.csv",
                "evaluation/cnn_a/classification_report.csv"):
        assert (report / csv).read_text().count("\n") > 1, csv
    predictions = (run_dir / "metrics" / "cnn_a_predictions.csv").read_text().splitlines()
    assert predictions[0].startswith("file,split,true,predicted,confidence,p_glioma_tumor")


def test_the_audit_finds_the_planted_twins_and_splits_the_test_metrics(first_run):
    run_dir, _ = first_run
    audit = json.loads((run_dir / "report" / "leakage" / "leakage.json").read_text())
    twins = {Path(p["test_file"]).name for p in audit["pairs"]}
    assert {f"twin_{i:04d}.jpg" for i in range(4)} <= twins  # the resized, re-encoded copies
    assert audit["twins"] == len(audit["pairs"]) == sum(audit["is_twin"])
    metrics = json.loads((run_dir / "metrics" / "cnn_a.json").read_text())
    parts = metrics["leakage"]
    assert parts["twin"]["samples"] == audit["twins"]
    assert parts["twin"]["samples"] + parts["novel"]["samples"] == metrics["test"]["samples"]
    correct = sum(parts[kind]["accuracy"] * parts[kind]["samples"] for kind in ("twin", "novel"))
    assert correct == pytest.approx(metrics["test"]["accuracy"] * metrics["test"]["samples"])
    assert 0 <= metrics["calibration"]["test"]["ece"] <= 1


def test_report_html_has_every_section_and_embeds_every_image(first_run):
    run_dir, _ = first_run
    page = (run_dir / "report.html").read_text()
    for key, title in SECTIONS:
        assert f'<section id="{key}"><h2>{title}</h2>' in page
        assert f'href="#{key}"' in page  # in the table of contents
    for needle in ("Imbalance ratio", "Test images with a twin", "expected calibration error", "Main confusions",
                   "Per-class sensitivity", "Intended use", "Model summary", "Overfitting", NOT_CLINICAL,
                   "No external folder was given", "Do the CNNs beat the baselines?", "<h3>Baselines</h3>",
                   "paired-bootstrap interval", "Glioma recall (sensitivity)", "[95 % interval]"):
        assert needle in page, needle
    sources = re.findall(r'<img src="([^"]+)"', page)
    figures = list((run_dir / "report").rglob("*.png"))
    assert len(sources) == len(figures) and all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
                                                for s in sources)
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_the_ensemble_steps_outcome_is_recorded_and_reported_built_or_not(first_run):
    run_dir, _ = first_run
    record = json.loads((run_dir / "report" / "ensemble" / "selection.json").read_text())
    assert record["decision"] == ("built" if ensemble_built(run_dir) else "no_gain")
    assert sorted(c["model"] for c in record["candidates"]) == sorted(TRAINED)
    single = record["best_single"]
    page = (run_dir / "report.html").read_text()
    part = page.split('<section id="ensemble">')[1].split("</section>")[0]
    assert (f"{single['val_macro_f1']:.3f} for the best single model, {single['model']}" if ensemble_built(run_dir)
            else f"No ensemble: on validation no mix beats {next(iter(record['chosen']['members']))} alone") in part
    for candidate in record["candidates"]:
        assert f"<td>{candidate['model']}</td><td>{candidate['val_macro_f1']:.3f}</td>" in part


def test_photo_grids_are_jpeg_plots_png_and_none_wider_than_twice_its_shown_width(first_run):
    from brain_tumor.embed import CONTENT_WIDTH, MAX_DENSITY
    from brain_tumor.figures import PHOTO_GRIDS

    run_dir, _ = first_run
    page = (run_dir / "report.html").read_text()
    shown = re.findall(r'<img src="data:(image/\w+);base64,([^"]+)" alt="([^"]+)" width="(\d+)">', page)
    assert len(shown) == len(list((run_dir / "report").rglob("*.png")))
    assert {name for _, _, name, _ in shown} >= set(PHOTO_GRIDS)  # the fixture run has every kind of photo grid
    for kind, data, name, width in shown:
        assert kind == ("image/jpeg" if name in PHOTO_GRIDS else "image/png"), name
        pixels = Image.open(io.BytesIO(base64.b64decode(data))).width
        assert int(width) <= CONTENT_WIDTH and pixels <= MAX_DENSITY * int(width), name


def test_the_conclusion_is_made_of_the_runs_numbers(first_run):
    run_dir, _ = first_run
    champion = json.loads((run_dir / "champion.json").read_text())
    metrics = json.loads((run_dir / "metrics" / f"{champion['champion']}.json").read_text())
    conclusion = (run_dir / "report.html").read_text().split('id="conclusion"')[1].split("</section>")[0]
    margin = champion["margin"]
    assert f"{champion['champion']} won on {champion['metric']} with {champion['value']:.3f}" in conclusion
    assert (f"its margin is {margin['difference']:+.3f}, with a 95 % paired-bootstrap interval of "
            f"{margin['low']:+.3f} to {margin['high']:+.3f}") in conclusion
    assert ("a real difference" if margin["distinguishable"] else "not distinguishable") in conclusion
    assert "standard error" not in conclusion
    assert f"accuracy {metrics['test']['accuracy']:.3f} and macro-F1 {metrics['test']['macro_f1']:.3f}" in conclusion
    glioma = metrics["test"]["intervals"]["recall"]["glioma_tumor"]
    assert f"on the test split: {glioma['value']:.3f} (95 % interval {glioma['low']:.3f}–{glioma['high']:.3f})" in \
        conclusion
    assert f"expected calibration error {metrics['calibration']['test']['ece']:.3f}" in conclusion
    assert "no external validation" in conclusion  # the fixture run has no external folder


def test_main_confusions_are_the_largest_off_diagonal_cells():
    names = ["a", "b", "c"]
    assert main_confusions([[5, 3, 0], [1, 6, 0], [0, 4, 2]], names, top=2) == [
        "c predicted as b: 4 of 6 (67%)", "a predicted as b: 3 of 8 (38%)"]
    assert main_confusions([[2, 0], [0, 2]], ["a", "b"]) == []


def test_each_step_logged_its_figures_to_clearml(first_run):
    run_dir, _ = first_run
    logged = {}
    for session in (run_dir / "clearml" / "offline").glob("*.zip"):
        with zipfile.ZipFile(session) as archive:
            name = json.loads(archive.read("task.json"))["name"]
            logged[name] = {n for n in archive.namelist() if n.endswith(".png")}
    assert len(logged["register_dataset"]) == 6  # counts, samples, three leakage figures, acquisition style
    assert len(logged["train_cnn_a"]) == 1
    assert len(logged["evaluate"]) == 3 * 4  # confusion, predictions, reliability, Grad-CAM background share
    assert len(logged.get("ensemble", set())) == (4 if ensemble_built(run_dir) else 0)
    assert len(logged["select_champion"]) == 3


def test_no_credential_reaches_the_run_folder(first_run):
    run_dir, _ = first_run
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    data = b"".join(archive.read(n) for n in archive.namelist())
            assert SECRET_MARKER.encode() not in data and ACCESS_MARKER.encode() not in data, path


def test_the_report_can_be_rebuilt_from_the_run_folder(first_run, tmp_path):
    run_dir, _ = first_run
    copy = shutil.copytree(run_dir, tmp_path / "copy")
    (copy / "report.html").unlink()
    assert build_report(copy).read_text().count("<section") == len(SECTIONS)


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (.ci/run installs it)")
def test_report_renders_in_headless_chromium_without_network(first_run, tmp_path):
    from playwright.sync_api import sync_playwright

    run_dir, _ = first_run
    requested = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("http*://**", lambda route: (requested.append(route.request.url), route.abort()))
        page.goto((run_dir / "report.html").as_uri())
        for key, title in SECTIONS:
            heading = page.locator(f"section#{key} > h2")
            assert heading.inner_text() == title and heading.is_visible()
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        figures = list((run_dir / "report").rglob("*.png"))
        assert len(images) == len(figures) and all(done and width > 100 for done, width in images)
        shown = page.evaluate("Array.from(document.images).map(i => [i.naturalWidth, i.clientWidth])")
        assert all(natural <= 2 * width for natural, width in shown), shown  # as wide as shown, for a HiDPI screen
        page.click("nav a[href='#calibration']")
        assert page.evaluate("location.hash") == "#calibration"
        shot = page.screenshot()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert requested == []
    assert_non_blank(shot, "screenshot")
