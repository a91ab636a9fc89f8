"""The demo's showcase page: built from a checkpoint and a world, opened in headless Chromium."""

import shutil

import pytest

from anyseq.showcase import build_showcase
from anyseq.testing import random_checkpoint

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.slow
def test_showcase_page_loads_its_images_and_audio_in_chromium(micro_world, tmp_path, artifacts):
    playwright = pytest.importorskip("playwright.sync_api")
    model = random_checkpoint(tmp_path / "model", context_length=2048, max_seconds=10.0)  # world clips
    report = tmp_path / "report.json"
    report.write_text(
        '{"entries": [{"task": "caption", "split": "test", "n": 3, "metric": "cider", "value": 0.5, "ceiling": 1.0}]}'
    )
    base = tmp_path / "base.json"  # the stage-1 model's table, beside the chat model's
    base.write_text(
        '{"entries": [{"task": "asr", "split": "test", "n": 3, "metric": "wer", "value": 0.25, "ceiling": 0.0}]}'
    )
    page_path = build_showcase(model, micro_world, report, tmp_path / "showcase", base)
    summary = (tmp_path / "showcase" / "showcase.json").read_text()
    for direction in [
        "caption",
        "draw",
        "transcribe",
        "speak",
        "voice",
        "describe",
        "compose",
        "chat",
        "Dialogue",
    ]:
        assert direction in summary

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth)")
        page.wait_for_function(
            "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)", timeout=30_000
        )
        durations = page.eval_on_selector_all("audio", "els => els.map(e => e.duration)")
        page.screenshot(path=str(artifacts / "showcase.png"), full_page=True)
        tables = page.eval_on_selector_all("table", "els => els.map(e => e.innerText)")
        headings = page.eval_on_selector_all("h2", "els => els.map(e => e.innerText)")
        browser.close()
    assert len(images) >= 3 and all(width > 0 for width in images)
    assert len(durations) >= 8 and all(d > 0 for d in durations)
    assert len(tables) == 2 and "cider" in tables[0] and "0.500" in tables[0]
    assert (
        "wer" in tables[1]
        and "0.250" in tables[1]
        and "Evaluation of the base model (after stage 1)" in headings
    )


def test_a_model_that_produces_no_media_is_shown_not_fatal():
    from anyseq.showcase import _model_cell

    def fails():
        raise RuntimeError("the model produced no music (finish reason: length)")

    cell = _model_cell(fails)
    assert cell.label == "model (no output)" and "no music" in cell.text and cell.media is None
    assert _model_cell(lambda: "a red circle").text == "a red circle"
