"""The editor page in a real headless Chromium (Debian's), against the real app served by uvicorn."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.archives import archive_rows, read_csv, write_csv
from tests.service.conftest import SAMPLE_ITEM
from training.data import Item

pytestmark = pytest.mark.browser
BATCH_KEY = "browser-batch-key"

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``uvicorn service.app:create_app`` in a subprocess on a free loopback port, ready to serve."""
    root = tmp_path_factory.mktemp("browser-data")
    shutil.copytree(model_dir, root / "models" / model_dir.name)
    (root / "models" / "ACTIVE").write_text(model_dir.name + "\n")
    port = free_port()
    # Only what the server needs: the host's XINXI_* (keys, database, poll interval) must not reach it.
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", str(root)),
        "XINXI_DATA_DIR": str(root),
        "XINXI_DATABASE_URL": f"sqlite:///{root / 'xinxi.db'}",
        "XINXI_LOG_LEVEL": "warning",
        "XINXI_API_KEYS": BATCH_KEY,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "service.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"uvicorn exited with {process.returncode}"
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                process.terminate()
                pytest.fail("the app did not become ready within 60 s")
            time.sleep(0.2)  # polling a separate process for readiness; there is nothing to wait on
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); CI does")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, server: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server + "/")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_pasting_an_item_shows_chips_score_and_highlights(page) -> None:
    page.fill("#title", SAMPLE_ITEM["title"])
    page.fill("#text", SAMPLE_ITEM["text"])
    page.click("#analyze-button")
    page.wait_for_selector("#result-body:not([hidden])", timeout=15_000)

    chips = page.locator("#chips .chip")
    assert chips.count() >= 5
    assert page.locator("#chips .chip.selected[data-label='investment']").count() == 1
    assert "%" in chips.first.inner_text()
    score = int(page.inner_text("#score"))
    assert 0 <= score <= 100
    assert page.inner_text("#grade") in {"动态类", "综合类"}
    marks = page.locator("#highlighted mark")
    assert marks.count() > 0
    assert all(mark in SAMPLE_ITEM["title"] + SAMPLE_ITEM["text"] for mark in marks.all_inner_texts())
    assert page.locator("#suggestions li").count() >= 1
    assert page.inner_text("#model-info").startswith("模型 ")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "editor-page.png"), full_page=True)


def test_an_empty_submission_shows_a_message_and_sends_nothing(page) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.fill("#title", "只有标题")
    page.fill("#text", "   \n  ")
    page.click("#analyze-button")
    assert page.locator("#message").is_visible()
    assert "正文" in page.inner_text("#message")
    assert not any("/v1/predict" in url for url in requests)
    assert page.locator("#result-body").is_hidden()


def test_a_service_error_shows_a_message_not_a_blank_page(page) -> None:
    body = {
        "error": {
            "code": "model_not_loaded",
            "message_zh": "模型正在加载，请几秒后重试",
            "message_en": "loading",
            "request_id": "abc123",
        }
    }
    page.route(
        "**/v1/predict",
        lambda route: route.fulfill(
            status=503, content_type="application/json", body=json.dumps(body, ensure_ascii=False)
        ),
    )
    page.click("#sample-button")
    page.click("#analyze-button")
    page.wait_for_selector("#message:not([hidden])")
    message = page.inner_text("#message")
    assert "模型正在加载" in message and "abc123" in message
    assert page.locator("#item-form").is_visible()
    assert page.is_enabled("#analyze-button")

    page.unroute("**/v1/predict")
    page.route("**/v1/predict", lambda route: route.abort())
    page.click("#analyze-button")
    page.wait_for_function("document.querySelector('#message').textContent.includes('无法连接')")


def test_long_text_is_analysed_with_its_warning(page) -> None:
    page.fill("#text", SAMPLE_ITEM["text"] * 150)
    assert "超过 2 万字" in page.inner_text("#counter")
    page.click("#analyze-button")
    page.wait_for_selector("#warnings li", timeout=30_000)
    assert "20000" in page.inner_text("#warnings")
    assert page.locator("#highlighted mark").count() > 0


def test_uploading_a_small_csv_runs_a_batch_job_to_the_end(page, tmp_path: Path, corpus: list[Item]) -> None:
    source = write_csv(tmp_path / "信息汇总.csv", archive_rows(corpus, 12), encoding="gbk")
    page.set_input_files("#batch-file", str(source))
    page.click("#batch-button")
    page.wait_for_selector("#key-row:not([hidden])", timeout=15_000)
    assert "API 密钥" in page.inner_text("#batch-status")
    page.fill("#api-key", BATCH_KEY)
    page.click("#batch-button")
    page.wait_for_function(
        "document.querySelector('#batch-status').textContent.startsWith('完成')", timeout=60_000
    )
    status = page.inner_text("#batch-status")
    assert "共 12 行" in status and "1 行未能评分" in status, status
    with page.expect_download() as download:
        page.click("#batch-download")
    assert download.value.suggested_filename == "信息汇总-xinxi.csv"
    header, rows = read_csv(Path(download.value.path()))
    assert "xinxi_quality_score" in header and len(rows) == 12
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "editor-page-batch.png"), full_page=True)


def _stored(server: str, **params: str) -> dict:
    """GET /v1/items with the key: what the store holds."""
    query = urllib.parse.urlencode(params)
    request = urllib.request.Request(f"{server}/v1/items?{query}", headers={"Authorization": f"Bearer {BATCH_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _item(server: str, item_id: int) -> dict:
    request = urllib.request.Request(f"{server}/v1/items/{item_id}", headers={"Authorization": f"Bearer {BATCH_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_adopting_and_correcting_a_scored_item_records_it(page, server: str) -> None:
    title = "浏览器测试：某县召开防汛工作会议"
    page.fill("#title", title)
    page.fill("#text", "6月3日，某县召开防汛工作会议，部署安全度汛各项工作，要求各乡镇落实值班值守制度。")
    page.click("#analyze-button")
    page.wait_for_selector("#record-panel", state="visible", timeout=15_000)
    page.select_option("#adopt-level", "city")
    page.click("#adopt-button")
    # Either it is recorded (a key from an earlier test is in the session) or the page asks for the key:
    # wait for one of the two answers before looking, not for the first paint after the click.
    page.wait_for_function(
        "document.querySelector('#record-status.done') !== null"
        " || document.querySelector('#record-status').textContent.includes('API 密钥')",
        timeout=15_000,
    )
    if "API 密钥" in page.inner_text("#record-status"):
        page.fill("#api-key", BATCH_KEY)
        page.click("#adopt-button")
        page.wait_for_selector("#record-status.done", timeout=15_000)
    assert "已采用（市级）" in page.inner_text("#record-status")
    [adopted] = [i for i in _stored(server, adopted="true")["items"] if i["title"] == title]
    assert adopted["adopted_level"] == "city" and adopted["origin"] == "page" and adopted["topics"] is None

    page.click("#correct-button")
    page.wait_for_selector("#correct-form", state="visible")
    for box in page.locator("#correct-topics input").all():
        box.set_checked(box.get_attribute("value") in {"emergency", "hot_issue"})
    page.check("#correct-kind input[value='news']")
    page.click("#correct-save")
    page.wait_for_function("document.querySelector('#record-status').textContent.startsWith('已更正')")
    detail = _item(server, adopted["id"])
    assert detail["topics"] == ["hot_issue", "emergency"] and detail["kind"] == "news"
    assert detail["adopted_level"] == "city"  # the correction keeps the adoption
    [correction] = detail["corrections"]
    assert correction["model_version"] == page.inner_text("#result-meta").removeprefix("模型 ")
    assert set(correction["probabilities"]) >= {"industry", "emergency", "analysis"}
    assert [c["action"] for c in detail["history"]] == ["insert", "correction"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "editor-page-record.png"), full_page=True)


def test_the_review_tab_lists_scored_items_and_labels_one(page, server: str) -> None:
    text = "浏览器测试待审：某村发展特色种植，村集体经济收入增长三成，带动农户增收。"
    page.fill("#text", text)
    page.click("#analyze-button")
    page.wait_for_selector("#result-body:not([hidden])", timeout=15_000)
    page.click("#tab-review")
    assert page.locator("#analyze-view").is_hidden()
    if page.locator("#review-key-row").is_visible() or "API 密钥" in (page.text_content("#review-status") or ""):
        page.fill("#review-key", BATCH_KEY)
        page.click("#review-refresh")
    # The page's scoring is kept after the answer is sent: refresh until it is listed (bounded).
    entry = page.locator("#review-list li", has_text="浏览器测试待审")
    for _ in range(20):
        page.wait_for_selector("#review-status.done", timeout=15_000)
        if entry.count():
            break
        page.click("#review-refresh")
        page.wait_for_timeout(250)
    assert entry.count() == 1
    assert "最近分析" in entry.inner_text() and "不确定度" in entry.inner_text()
    for box in entry.locator(".label-topics input").all():
        box.set_checked(box.get_attribute("value") == "rural")
    entry.locator(".label-kind input[value='analysis']").check()
    entry.locator(".review-save").click()
    entry.locator(".labelled").wait_for(timeout=15_000)
    [stored] = [i for i in _stored(server, topic="rural")["items"] if i["text"] == text]
    assert stored["kind"] == "analysis" and stored["origin"] == "page"
    page.click("#review-refresh")
    # The status may still read "done" from before the click: wait for the refreshed list itself.
    gone = page.locator("#review-list li", has_text="浏览器测试待审")
    gone.first.wait_for(state="detached", timeout=15_000)
    assert gone.count() == 0
    page.screenshot(path=str(ARTIFACTS / "editor-page-review.png"), full_page=True)
