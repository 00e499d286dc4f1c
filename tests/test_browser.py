"""The web playground in a real browser: the server runs on a loopback port (uvicorn in a thread),
headless Chromium (Debian's, driven by Playwright) types, clicks and reads the page for every
task, and saves a screenshot of each.

Chromium comes from Debian (`make test` installs it when /usr/bin/chromium is missing and it runs
as root; Playwright's own browser download cannot work offline). Without it the test is skipped,
with the reason in pytest's summary; SEQLAB_REQUIRE_BROWSER=1 makes a missing Chromium a failure
instead (for a machine that must run it).
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from serve_runs import tiny_models

from seqlab.serve.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# without the background-networking flags Chromium keeps calling Google's hosts, which this
# offline machine refuses
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APPLE = "Apple is looking at buying U.K. startup for $1 billion"


def missing_browser_reason(chromium: str = CHROMIUM) -> str | None:
    """Why the browser test cannot run here (None: it can)."""
    if Path(chromium).is_file():
        return None
    return (
        f"{chromium} is missing (Debian's chromium; `make browser` installs it as root), "
        "so the playground was not tested in a browser"
    )


if (_reason := missing_browser_reason()) is not None and os.environ.get("SEQLAB_REQUIRE_BROWSER") != "1":
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason=_reason)]  # before the fixtures build any model


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_llama):
    """The real server (uvicorn) on a free loopback port, for the module's tests."""
    models = {**tiny_models(tmp_path_factory.getbasetemp() / "serve-runs"), "llama": str(tiny_llama)}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(models), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser_page(server):
    if (reason := missing_browser_reason()) is not None:  # only with SEQLAB_REQUIRE_BROWSER=1
        pytest.fail(f"{reason}; SEQLAB_REQUIRE_BROWSER=1 asks for it")
    from playwright.sync_api import sync_playwright

    url = server
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, viewport={"width": 1100, "height": 760}
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        offsite = []
        page.on("request", lambda request: None if request.url.startswith(url) else offsite.append(request.url))
        page.goto(url + "/")
        page.wait_for_selector("#status.ok")
        yield page
        assert offsite == [], f"the page asked for something off this server: {offsite}"
        context.close()


def run_task(page, task: str, model: str | None, text: str) -> None:
    page.click(f"#tasks button[data-task='{task}']")
    if model is not None:
        page.select_option("#model", model)
    page.fill("#input", text)
    page.click("#run")
    page.wait_for_selector("#result[data-state='done'], #result[data-state='error']", state="attached")


def test_every_task_in_the_browser(browser_page, server, tmp_path):
    page, url = browser_page, server
    api = httpx.Client(base_url=url, timeout=30)
    shots = Path(os.environ.get("SEQLAB_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)

    # classify: probabilities, and the [CLS] row of the attention as a heat map over the tokens
    run_task(page, "classify", "sentiment", "great fun movie")
    expected = api.post("/v1/classify", json={"model": "sentiment", "texts": ["great fun movie"]}).json()["results"][0]
    for label, p in expected["probabilities"].items():
        assert page.inner_text(f".prob-value[data-label='{label}']") == f"{p:.3f}"
    assert page.inner_text(".prob.top.prob-label") == expected["label"]
    assert page.locator(".heatmap .tok").all_inner_texts() == ["[CLS]", "great", "fun", "movie"]
    weights = [float(w) for w in page.locator(".heatmap .tok").evaluate_all("spans => spans.map(s => s.dataset.weight)")]
    assert sum(weights) == pytest.approx(1, abs=1e-2)  # one attention row, mean of heads
    page.select_option("#head", "0")  # per-head view
    one_head = [float(w) for w in page.locator(".heatmap .tok").evaluate_all("spans => spans.map(s => s.dataset.weight)")]
    assert sum(one_head) == pytest.approx(1, abs=1e-2)
    page.screenshot(path=str(shots / "classify.png"), full_page=True)

    # generate: the text streams in and ends as the non-streaming greedy text
    page.click("#tasks button[data-task='generate']")
    page.fill("#max-new-tokens", "12")
    run_task(page, "generate", "llama", "a dog ran")
    page.wait_for_selector(".generated[data-state='done']")
    greedy = api.post("/v1/generate", json={"model": "llama", "prompt": "a dog ran", "max_new_tokens": 12}).json()["text"]
    assert greedy and page.inner_text(".generated .new") == greedy
    page.screenshot(path=str(shots / "generate.png"), full_page=True)

    # ner: entities marked displaCy style
    run_task(page, "ner", "ents", APPLE)
    marks = page.locator("mark.entity")
    labels = marks.evaluate_all("ms => ms.map(m => m.dataset.label)")
    texts = marks.evaluate_all("ms => ms.map(m => m.firstChild.textContent)")
    assert list(zip(texts, labels)) == [("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")]
    without_labels = "box => { const c = box.cloneNode(true); c.querySelectorAll('.entity-label').forEach(l => l.remove()); return c.textContent; }"
    assert page.locator(".entities").evaluate(without_labels) == APPLE  # the text itself is untouched
    page.screenshot(path=str(shots / "ner.png"), full_page=True)

    # translate: the translation and its target × source alignment matrix
    run_task(page, "translate", "rev", "a b c")
    result = api.post("/v1/translate", json={"model": "rev", "texts": ["a b c"], "beam": 1}).json()["results"][0]
    assert page.inner_text(".translation") == result["translation"]
    assert page.locator("table.alignment thead th[scope='col']").all_inner_texts() == result["source_tokens"]
    assert page.locator("table.alignment tbody tr").count() == len(result["target_tokens"])
    assert page.locator("table.alignment tbody tr").first.locator("td").count() == len(result["source_tokens"])
    page.screenshot(path=str(shots / "translate.png"), full_page=True)

    # fill-mask: the candidates for the [MASK]
    run_task(page, "fill-mask", "mlm", "the cat sees the [MASK]")
    masks = api.post("/v1/fill-mask", json={"model": "mlm", "text": "the cat sees the [MASK]", "top_k": 5}).json()["masks"]
    assert page.locator(".candidate").all_inner_texts() == [c["token"] for c in masks[0]]

    # augment: the original and its augmentations side by side
    page.click("#tasks button[data-task='augment']")
    page.select_option("#method", "contextual")
    page.select_option("#tagger", "spacy")
    page.fill("#versions", "2")
    run_task(page, "augment", None, "the cat sees the dog\na fox sees the king")
    expected = api.post(
        "/v1/augment",
        json={
            "texts": ["the cat sees the dog", "a fox sees the king"],
            "method": "contextual",
            "n": 2,
            "seed": 0,
            "options": {"model": "mlm", "tagger": "spacy"},
        },
    ).json()
    assert page.locator("table.augmented td.original").all_inner_texts() == ["the cat sees the dog", "a fox sees the king"]
    assert page.locator("table.augmented td.augmentation").all_inner_texts() == [
        a for r in expected["results"] for a in r["augmentations"]
    ]
    page.screenshot(path=str(shots / "augment.png"), full_page=True)

    # bad input: the server's one-line error, shown on the page
    run_task(page, "classify", "sentiment", "   ")
    assert "blank" in page.inner_text("#error") and page.locator(".probs").count() == 0
    assert (shots / "classify.png").stat().st_size > 10_000


def open_watched(context, address: str):
    """A new page at `address`, with the console errors and the requests it makes."""
    page, errors, requests = context.new_page(), [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(address, wait_until="load")
    return page, errors, requests


def test_every_run_report_opens_from_the_playground(browser_page, server, tmp_path):
    """The playground lists its models with a link to each run's report; each report opens with
    no console error, asks for nothing (its pictures are inside it), and every picture loads."""
    page, url = browser_page, server
    links = page.locator("#model-list a.report-link")
    names = page.locator("#model-list tbody tr").evaluate_all("rows => rows.map(r => r.dataset.model)")
    served = {m["name"]: m for m in httpx.get(url + "/v1/models", timeout=30).json()["models"]}
    assert sorted(names) == sorted(served)
    hrefs = links.evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert sorted(hrefs) == sorted(m["report"] for m in served.values() if m["report"])  # built-ins have none
    assert len(hrefs) >= 5
    shots = Path(os.environ.get("SEQLAB_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    pictures = {}
    for href in hrefs:
        report, errors, requests = open_watched(page.context, url + href)
        widths = report.locator("img").evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert all(width > 0 for width in widths), (href, widths)
        pictures[href] = len(widths)
        assert report.locator("h2", has_text="Summary").count() == 1
        assert errors == [], (href, errors)
        assert [r for r in requests if not r.startswith("data:")] == [url + href], requests  # the page itself, nothing else
        report.screenshot(path=str(shots / f"report-{href.split('/')[-2]}.png"), full_page=True)
        report.close()
    # curves, confusion matrix and attention; (a run without held-out data, like rev, may have none)
    assert pictures["/v1/models/sentiment/report"] >= 2, pictures
