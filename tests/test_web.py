"""The browser page (web/) in a real browser: headless Chromium from the system's packages,
driven by Playwright, serving the page and an exported model with the standard library's HTTP
server. Its outputs must be Python's, its heatmap must be drawn from the model's attention, and
its errors must show on the page.

Needs ``chromium`` on the PATH and ``web/node_modules`` (``make web-deps``). Without them these
tests are skipped, except under CI (the ``CI`` variable set), where they fail."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TOK, surrogate_model

from transformer_tiny.attention_maps import cross_attention_maps
from transformer_tiny.checkpoint import load_checkpoint, save_checkpoint, seen_bytes
from transformer_tiny.config import DataConfig, ModelConfig, RunConfig
from transformer_tiny.data import draw_inputs, heldout_inputs
from transformer_tiny.decoding import predict
from transformer_tiny.inputs import unseen_characters
from transformer_tiny.model import Seq2SeqTransformer
from transformer_tiny.web import export_web

WEB = ROOT / "web"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
READY = WEB / "node_modules" / "onnxruntime-web" / "dist"
missing = [what for what, ok in (("chromium", CHROMIUM), ("web/node_modules", READY.is_dir()))
           if not ok]
if missing and os.environ.get("CI"):
    raise RuntimeError(f"the browser tests need {' and '.join(missing)}: apt-get install -y "
                       "chromium; make web-deps")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")]
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

FIRST_TRIES = ["mississippi", "Hello, world!", "café", "naïve façade", "Ελληνικά", "Привет",
               "中文字符", "日本語のかな", "한국어", "😀👍🎉", "e\u0301te\u0301", "aaaaaaaaaaaa",
               "abcabcabcabc", "9999+1", " leading", "tab\tin", "x", "Ünïcödé ünd ASCII",
               "🙂 and text 🙃", "ÀÉÎÕÜ", "two\nlines", "abc\ufeff"]  # U+FEFF leads the answer


@pytest.fixture(scope="module")
def site(tmp_path_factory, trained_run) -> Path:
    """A folder served as the site: the page's files, its npm dependency, and two exported
    models: ``model`` (``trained_run``: reversal on the unicode alphabet, lengths 1-8) and
    ``other`` (an untrained copy model on the printable alphabet)."""
    root = tmp_path_factory.mktemp("site")
    for name in ("index.html", "app.js", "tiny.js", "style.css", "node_modules"):
        (root / name).symlink_to(WEB / name)
    (root / "run").symlink_to(trained_run)
    export_web(trained_run, root / "model")
    other = root / "other-run"
    cfg = RunConfig(ModelConfig(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16,
                                max_positions=48), DataConfig(task="copy", alphabet="printable"))
    save_checkpoint(other, "best", Seq2SeqTransformer(cfg.model), cfg, {"step": 0})
    export_web(other, root / "other")
    return root


@pytest.fixture(scope="module")
def url(site):
    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request log in the test output
        pass


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def close_pages(request):
    """Close a test's pages after it: each holds its model's sessions (hundreds of MB), and the
    module opens some 25."""
    yield
    if "browser" in request.fixturenames:
        for context in request.getfixturevalue("browser").contexts:
            context.close()


def settled(page) -> str:
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)",
                           timeout=60_000)
    return page.evaluate("document.body.dataset.state")


def open_page(browser, url: str, query: str = ""):
    page = browser.new_page()
    page.goto(url + query)
    settled(page)
    return page


def type_and_run(page, text: str) -> str:
    page.evaluate("document.body.dataset.state = 'typing'")
    page.fill("#input", text)
    page.click("#run")
    return settled(page)


def test_page_outputs_equal_python_predict(site, url, browser):
    model, cfg, _ = load_checkpoint(site / "run")
    held_out = heldout_inputs(cfg.data)[1][:80]
    longer = draw_inputs(cfg.data, 25, 7, min_len=9, max_len=20)  # never this long in training
    texts = [*held_out, *longer, *FIRST_TRIES]
    assert len(held_out + longer) >= 100 and min(len(t) for t in longer) > cfg.data.max_len
    page = open_page(browser, url)
    wrong = []
    for text in texts:
        assert type_and_run(page, text) == "done", page.text_content("#error")
        typed = page.input_value("#input")  # a text area keeps line breaks, each as LF
        assert typed == text.replace("\r\n", "\n").replace("\r", "\n")
        ids = [int(x) for x in (page.get_attribute("#output", "data-ids") or "").split(",") if x]
        (expected, _), = predict(model, [typed])
        if ids != expected or page.text_content("#output") != TOK.decode(expected):
            wrong.append((text, ids, expected))
    assert not wrong, wrong[:3]
    outputs = [TOK.decode(ids) for ids, _ in predict(model, held_out)]
    right = sum(out == t[::-1] for t, out in zip(held_out, outputs, strict=True))
    assert right >= 55  # a model that has learned the task: the comparison is not of noise


def cells(page) -> list[list[int]]:
    """The red channel at the centre of every heatmap cell, rows = output characters."""
    return page.evaluate("""() => {
        const c = document.getElementById('heatmap'), d = c.dataset;
        const [rows, cols, cell, m] = [+d.rows, +d.cols, +d.cell, +d.margin];
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return Array.from({length: rows}, (_, r) => Array.from({length: cols}, (_, k) => {
            const x = m + Math.floor((k + 0.5) * cell), y = m + Math.floor((r + 0.5) * cell);
            return px[4 * (y * c.width + x)];
        }));
    }""")


def test_heatmap_draws_the_models_attention(site, url, browser):
    model, _, _ = load_checkpoint(site / "run")
    text = "abcdefgh"
    maps = cross_attention_maps(model, text)
    assert maps.output == text[::-1]
    page = open_page(browser, url)
    assert type_and_run(page, text) == "done"
    manifest_heads = page.evaluate("Array.from(document.querySelectorAll('#head option'))"
                                   ".map(o => o.textContent)")
    assert [h for h, label in enumerate(manifest_heads) if "from the end" in label] == [2, 3]
    anti_diagonal = list(range(len(text) - 1, -1, -1))
    for layer in range(maps.weights.size(0)):
        for head in range(maps.weights.size(1)):
            page.select_option("#layer", str(layer))
            page.select_option("#head", str(head))
            grid = torch.tensor(cells(page), dtype=torch.float64)
            python = maps.weights[layer, head, : len(text), 1:-1].double()  # ASCII: 1 byte each
            assert grid.shape == python.shape == (len(text), len(text))
            assert (grid - 255 * python).abs().max() <= 1.0, (layer, head)  # red = 255 * weight
            brightest = grid.argmax(-1).tolist()
            if head >= 2:  # the heads that count from the end of the input
                assert brightest == anti_diagonal, (layer, head)
    assert grid.max() > 200  # drawn, and bright where it attends


def test_over_limit_input_shows_its_message(url, browser):
    page = open_page(browser, url)
    assert page.get_attribute("#output", "data-ids")  # the first input's answer
    assert type_and_run(page, "é" * 32) == "error"  # 64 bytes; the model takes 62
    assert page.get_attribute("#output", "data-ids") is None  # not the last answer's ids
    assert page.is_visible("#error")
    assert "input too long: 64 bytes, this model supports at most 62" in \
        page.text_content("#error")
    assert page.text_content("#output") == ""


def test_a_model_that_fails_to_load_says_so(url, browser):
    page = open_page(browser, url, "?model=no-such-folder")
    assert page.evaluate("document.body.dataset.state") == "error"
    assert "Could not load the model from no-such-folder/" in page.text_content("#error")
    assert page.text_content("#error").endswith(  # the export that would make the folder
        "Export one with python scripts/export.py --checkpoint RUN --web web/no-such-folder.")


def test_the_page_labels_the_task_and_alphabet_it_shows(url, browser):
    page = open_page(browser, url)
    assert (page.text_content("#task"), page.text_content("#alphabet")) == ("reverse", "unicode")
    page = open_page(browser, url, "?model=other")
    assert (page.text_content("#task"), page.text_content("#alphabet")) == ("copy", "printable")
    assert page.input_value("#model-folder") == "other"


def test_a_new_input_takes_over_from_the_run_in_progress(site, url, browser):
    model, _, _ = load_checkpoint(site / "run")
    page = open_page(browser, url)
    page.fill("#input", "a much longer input, twenty-nine")
    page.click("#run")
    page.fill("#input", "xyz")
    page.click("#run")  # at once: the first run stops at its next step, then this one runs
    (expected, _), = predict(model, ["xyz"])
    page.wait_for_function(f"document.getElementById('output').dataset.ids === "
                           f"'{','.join(map(str, expected))}' && "
                           "document.body.dataset.state === 'done'", timeout=60_000)
    assert page.text_content("#output") == TOK.decode(expected)
    assert len(cells(page)) == len(TOK.decode(expected))  # the heatmap is the second input's


def test_run_before_a_model_is_ready_stays_on_the_page(url, browser):
    page = open_page(browser, url, "?model=no-such-folder")
    page.fill("#input", "mississippi")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.stillHere = true")  # a reload would drop it
    page.click("#run")  # no model: nothing runs, and the form does not reload the page
    page.wait_for_timeout(500)  # a submission to this local server commits well within it
    assert navigations == [] and page.evaluate("window.stillHere === true")
    assert page.url.endswith("?model=no-such-folder")
    assert page.input_value("#input") == "mississippi"
    assert "Could not load the model from no-such-folder/" in page.text_content("#error")
    assert page.text_content("#error").endswith(  # the export that would make the folder
        "Export one with python scripts/export.py --checkpoint RUN --web web/no-such-folder.")


def test_enter_runs_and_shift_enter_starts_a_new_line(site, url, browser):
    model, _, _ = load_checkpoint(site / "run")
    page = open_page(browser, url)
    page.fill("#input", "ab")
    page.focus("#input")
    page.keyboard.press("End")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("c")
    assert page.input_value("#input") == "ab\nc"
    page.evaluate("document.body.dataset.state = 'typing'")
    page.keyboard.press("Enter")
    assert settled(page) == "done" and page.input_value("#input") == "ab\nc"  # not a new line
    (expected, _), = predict(model, ["ab\nc"])
    assert page.get_attribute("#output", "data-ids") == ",".join(map(str, expected))


def test_a_model_from_another_site_or_with_a_broken_manifest_is_refused(site, url, browser):
    page = open_page(browser, url, "?model=//example.invalid/m")
    assert "the model folder must be on this site" in page.text_content("#error")
    shipped = json.loads((site / "model" / "model.json").read_text())
    n, nh, hs = shipped["n_layers"], shipped["n_heads"], shipped["head_size"]
    cases = {  # a change to model.json -> the page's message
        "n_layers": ({"n_layers": 10**9}, "n_layers is missing or invalid"),  # a menu entry each
        "layers": ({"n_layers": n + 1}, f"n_layers is {n + 1}, the graphs have {n}"),
        "head_size": ({"head_size": None}, "head_size is missing or invalid"),
        "heads": ({"n_heads": nh + 1}, f"n_heads is {nh + 1}, the graphs have {nh}"),
        "head-size": ({"head_size": hs * 2}, f"head_size is {hs * 2}, the graphs have {hs}"),
        "ids": ({"special_ids": {"pad": 256, "bos": 256, "eos": 256}},
                "special_ids is missing or invalid"),
        "format": ({"input_format": {"kind": "add"}}, "input_format is missing or invalid"),
        "alphabet": ({"alphabet": None}, "alphabet is missing or invalid"),
        "null": (None, "model.json: not a JSON object"),
    }
    for name, (change, message) in cases.items():
        broken = site / f"broken-{name}"
        if not broken.exists():
            shutil.copytree(site / "model", broken)
            manifest = json.loads((broken / "model.json").read_text())
            manifest = None if change is None else {**manifest, **change}
            (broken / "model.json").write_text(json.dumps(manifest))
        page = open_page(browser, url, f"?model=broken-{name}")
        assert message in page.text_content("#error"), name


def test_the_first_input_is_one_the_task_takes(site, url, browser):
    run = site / "add-run"
    cfg = RunConfig(ModelConfig(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16,
                                max_positions=48), DataConfig(task="add", max_len=11))
    save_checkpoint(run, "best", Seq2SeqTransformer(cfg.model), cfg, {"step": 0})
    export_web(run, site / "add")
    page = open_page(browser, url, "?model=add")  # add refuses "Hello, world!"
    assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#error")
    assert page.input_value("#input") == json.loads((site / "add" / "model.json").read_text())[
        "example"]
    assert "takes two numbers of at most 5 digits." in page.text_content("#model-info")
    # as infer.py: spaces around the numbers are dropped, so they are no unseen character
    assert type_and_run(page, "1 + 2") == "done", page.text_content("#error")
    assert not page.is_visible("#note")
    assert type_and_run(page, "1 2+3") == "error"
    assert "expected digits+digits" in page.text_content("#error")


def test_a_pairs_model_is_described_without_the_generator_s_lengths(site, url, browser,
                                                                     untrained_pairs_run):
    export_web(untrained_pairs_run, site / "pairs")
    page = open_page(browser, url, "?model=pairs")
    assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#error")
    info = page.text_content("#model-info")
    assert info.startswith("task pairs: ") and "trained on inputs" not in info
    assert type_and_run(page, "") == "done", page.text_content("#error")  # as infer.py warns
    assert "this model never saw an empty input in training" in page.text_content("#note")
    assert type_and_run(page, "ab") == "done" and not page.is_visible("#note")


def test_the_page_notes_unseen_characters_and_invalid_output_as_infer_does(site, url, browser):
    """The quickstart-like model was trained on the unicode alphabet, which holds every byte:
    nothing is new to it. A model of printable ASCII never saw a tab."""
    _, cfg, info = load_checkpoint(site / "run")
    page = open_page(browser, url)
    assert type_and_run(page, "tab\there") == "done"
    assert unseen_characters("tab\there", cfg.data, seen_bytes(info)) == []
    assert not page.is_visible("#note")
    assert "not valid UTF-8" not in page.text_content("#time")
    model = surrogate_model()  # writes ED A0 80 (a surrogate: not valid UTF-8) whatever it reads
    run = site / "surrogate-run"
    printable = RunConfig(model.cfg, DataConfig(alphabet="printable"))
    save_checkpoint(run, "best", model, printable, {"step": 0})
    export_web(run, site / "surrogate")
    page = open_page(browser, url, "?model=surrogate")
    assert type_and_run(page, "tab\there") == "done"
    assert unseen_characters("tab\there", printable.data) == ["\t"]
    assert 'never saw in training: "\\t"' in page.text_content("#note")
    assert type_and_run(page, "mississippi") == "done"
    assert not page.is_visible("#note")
    assert "not valid UTF-8: shown with U+FFFD" in page.text_content("#time")
    page.evaluate("document.body.dataset.state = 'typing'")
    page.evaluate("document.getElementById('input').value = 'a\\ud800b'")  # a lone surrogate
    page.click("#run")
    assert settled(page) == "done"
    assert "lone surrogate, which is no character: the page reads it as U+FFFD" in \
        page.text_content("#note")
