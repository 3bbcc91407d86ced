"""The gateway's page (``GET /``) in a real headless Chromium, against the real system.

Debian's chromium and chromedriver (scripts/install.sh) are driven through selenium;
the gateway is the session's real gunicorn on its cluster and workers. Questions are
typed into the focused box and sent with Enter, as a keyboard-only user would. Each
test saves a screenshot to its tmp folder when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from qasearch.cluster import workers
from qasearch.core import heartbeat, keys
from qasearch.core.partitions import owned_partitions, partition_tag
from qasearch.core.topology import masters, node_client
from tests.system import REPO, owner_of_doc, post, qasearch, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Headless as root, and quiet: without the background-networking flags chromium keeps
# trying to reach update and sync services the closed network refuses.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1100,1400")
ANSWER_WAIT_S = 180  # the untrained reader on 2 shared cores is slow, not wrong
SAMPLE_QUESTION = json.loads((REPO / "data/sample/questions.json").read_text())[
    "data"][0]["paragraphs"][0]["qas"][0]["question"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")  # new and empty: no state leaks in
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(CHROMEDRIVER, log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()  # ends the chromedriver and chromium it started


@contextmanager
def screenshot_on_failure(driver, folder: Path):
    try:
        yield
    except BaseException:
        driver.save_screenshot(str(folder / "failure.png"))
        raise


def base_url(settings) -> str:
    return f"http://127.0.0.1:{settings.api_port}/"


def open_page(driver, settings) -> None:
    driver.get(base_url(settings))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete'"))


def text(root, selector: str) -> str:
    # textContent, not .text: the comparison is with the API's string, spaces and all
    return root.find_element(By.CSS_SELECTOR, selector).get_property("textContent")


def set_option(driver, element_id: str, value: str) -> None:
    driver.find_element(By.ID, "options").get_property("open") or driver.find_element(
        By.CSS_SELECTOR, "#options summary").send_keys(Keys.ENTER)
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def ask(driver, question: str | None, key: str | None = None) -> str:
    """Type into the focused field and press Enter; the status line once the page is done."""
    driver.execute_script("document.getElementById('status').textContent = ''")
    if question is not None:
        box = driver.find_element(By.ID, "question")
        box.clear()
        box.send_keys(question)
    focused = driver.switch_to.active_element
    focused.send_keys((key or "") + Keys.ENTER)
    WebDriverWait(driver, ANSWER_WAIT_S).until(lambda d: d.execute_script(
        "const s = document.getElementById('status').textContent;"
        "return s !== '' && s !== 'Asking…' && !document.getElementById('ask').hasAttribute("
        "'aria-busy');"))
    return text(driver, "#status")


def cards(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#results > li")


def test_a_sample_question_is_answered_and_highlighted_as_the_api_answers(
        system, browser, tmp_path):
    with screenshot_on_failure(browser, tmp_path):
        open_page(browser, system)
        assert browser.switch_to.active_element.get_attribute("id") == "question"
        unlabelled = browser.execute_script(
            "return [...document.querySelectorAll('input')].filter(i => !i.labels.length)"
            ".map(i => i.id)")
        assert unlabelled == []
        browser.switch_to.active_element.send_keys(SAMPLE_QUESTION)
        status_line = ask(browser, None)
        # The same request the page sent (its defaults): served from the response cache
        # the page's own request filled, so both show one response.
        status, body = post(system, {"search": SAMPLE_QUESTION})
        assert status == 200, body
        assert body["results"], body
        assert status_line.startswith(f"{len(body['results'])} answers in"), status_line
        shown = cards(browser)
        assert len(shown) == len(body["results"])
        for card, hit in zip(shown, body["results"]):
            assert text(card, "mark") == hit["answer"] == hit["sentence"][hit["start"]:hit["end"]]
            assert text(card, ".passage") == hit["sentence"]
            assert text(card, ".title") == (hit["title"] or "(untitled)")
            assert text(card, "dd.doc-id") == hit["doc_id"]
            assert text(card, "dd.partition") == hit["partition"]
            assert text(card, "dd.score") == f"{hit['score']:.4f}"
            assert text(card, "dd.similarity") == f"{hit['similarity']:.4f}"
        assert text(browser, "#warning") == body["warning"]  # the untrained MiniLM reader
        # the reader's verdict is shown exactly when the response says it
        no_answer_line = browser.find_element(By.ID, "no-answer")
        assert no_answer_line.is_displayed() == body["no_answer"]
        if body["no_answer"]:
            assert "finds no answer" in no_answer_line.text
        assert text(browser, "#model-version") == body["model"]["version"]
        assert text(browser, "#trained") == "no"
        total = body["shards"]["partitions"]["total"]
        assert text(browser, "#partitions") == f"{total} of {total} answered"
        assert text(browser, "#missing") == "none"
        fetched = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert {base_url(system) + "static/app.js", base_url(system) + "static/style.css",
                base_url(system) + "qasearch"} <= set(fetched)
        assert all(url.startswith(base_url(system)) for url in fetched), fetched
        browser.save_screenshot(str(tmp_path / "page.png"))  # README: docs/page.png


def test_markup_in_a_passage_is_shown_as_text_and_never_run(system, browser, tmp_path):
    doc_id = "web-markup"
    text_with_markup = ("The Oskarsson glassworks printed <b>bold</b> labels on every bottle "
                        "it blew. A prankster etched <script>window.pwned=1</script> into "
                        "the foreman's ledger.")
    corpus = tmp_path / "markup.jsonl"
    corpus.write_text(json.dumps({"id": doc_id, "title": "Oskarsson <i>glassworks</i>",
                                  "text": text_with_markup}) + "\n")
    qasearch(system, "load", str(corpus), "--format", "jsonl", "--quiet")
    tag, owner = owner_of_doc(system, doc_id)
    node = node_client(owner.host, owner.port, system)
    wait_for(lambda: node.exists(keys.tensors(tag, keys.passage_id(doc_id, 0))),
             what="tensors of the markup passage")
    with screenshot_on_failure(browser, tmp_path):
        open_page(browser, system)
        set_option(browser, "num-results", "100")
        set_option(browser, "top-k", "1")  # the best passage of each partition: ours in its own
        ask(browser, "What did the Oskarsson glassworks print on every bottle?")
        ours = [c for c in cards(browser) if text(c, "dd.doc-id") == doc_id]
        assert ours, [text(c, "dd.doc-id") for c in cards(browser)]
        assert text(ours[0], ".passage") == text_with_markup
        assert text(ours[0], ".title") == "Oskarsson <i>glassworks</i>"
        for tag_name in ("script", "b", "i"):
            assert browser.find_elements(By.CSS_SELECTOR, f"#results {tag_name}") == []
        assert browser.execute_script("return typeof window.pwned") == "undefined"


def post_with_key(settings, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        base_url(settings) + "qasearch", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-API-Key": settings.api_key})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_keyed_gateway_asks_for_the_key_and_then_answers(guarded, browser, tmp_path):
    for path in ("", "static/app.js", "static/style.css"):  # the page loads without the key
        with urllib.request.urlopen(base_url(guarded) + path, timeout=30) as resp:
            assert resp.status == 200
    with screenshot_on_failure(browser, tmp_path):
        open_page(browser, guarded)
        key_field = browser.find_element(By.ID, "api-key")
        assert not key_field.is_displayed()
        ask(browser, SAMPLE_QUESTION)
        assert text(browser, "#error").startswith("401: missing or wrong API key")
        assert cards(browser) == []
        assert browser.switch_to.active_element == key_field  # focus moved to the key field
        ask(browser, None, key="not-the-key")
        assert text(browser, "#error").startswith("401: ")
        key_field.clear()
        key_field.send_keys(guarded.api_key)
        # with the key, a request over this gateway's limit: the 400's own message
        too_many = guarded.max_num_results + 1
        set_option(browser, "num-results", str(too_many))
        ask(browser, None)
        status, body = post_with_key(guarded, {"search": SAMPLE_QUESTION,
                                               "num_results": too_many})
        assert status == 400, body
        assert text(browser, "#error") == f"400: {body['error']}"
        set_option(browser, "num-results", str(guarded.max_num_results))
        status_line = ask(browser, None)
        status, body = post_with_key(guarded, {"search": SAMPLE_QUESTION,
                                               "num_results": guarded.max_num_results})
        assert status == 200, body
        assert text(browser, "#error") == ""
        assert status_line.startswith(f"{len(body['results'])} answers in"), status_line
        assert [text(c, "mark") for c in cards(browser)] == [r["answer"] for r in body["results"]]


def test_a_partial_response_names_its_missing_partitions(system, browser, tmp_path):
    # One master's worker paused (SIGSTOP, by the pid its heartbeat gives: a worker this
    # session's supervisor started) misses every deadline until it is resumed; so does
    # the standby beside its replica, paused too (else it would answer for the master).
    state = next(s for s in workers.states(system) if "pid" in s)
    master = next(m for m in masters(system) if m.address == state["master"])
    replicas = {f"{h}:{p}" for h, p in master.replicas}
    standbys = [w.local_pid for w in workers.node_workers(system)
                if w.address in replicas and w.local_pid]
    pids = [int(state["pid"]), *standbys]
    question = "Which partitions answer while one shard worker is paused?"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        with screenshot_on_failure(browser, tmp_path):
            open_page(browser, system)
            # long enough for the live shards on a busy machine; the paused one misses any
            set_option(browser, "timeout-ms", "8000")
            browser.find_element(By.ID, "use-cache").click()  # off: a fresh fan-out
            status_line = ask(browser, question)
            total = int(text(browser, "#partitions").split(" of ")[1].split()[0])
            paused = [partition_tag(p) for p in owned_partitions(master.ranges, total)]
            assert "partial" in status_line, status_line
            assert text(browser, "#missing") == ", ".join(paused)
            failed = text(browser, "#failed")
            assert state["master"] in failed and "deadline exceeded" in failed, failed
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: all(heartbeat.is_ready(s) for s in workers.states(system)), timeout=60,
                 what="every worker ready again after the pause")
