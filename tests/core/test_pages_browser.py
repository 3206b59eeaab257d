"""The generator page in a real browser (headless Chromium) against a real gunicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium, keep_screenshot

DATA = "https://example.com/menu?table=12"


@pytest.fixture
def server(app: Any, database_url: str, serve: Any, tmp_path: Path) -> Any:
    """`app` migrates the database: `qrsvc serve` refuses one that is not."""
    return serve({"QRSVC_DATABASE_URL": database_url, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")})


@pytest.fixture
def page(tmp_path: Path) -> Any:
    """A fresh browser page that records every request it sends and every console complaint."""
    with chromium() as browser:
        context = browser.new_context(accept_downloads=True, viewport={"width": 1180, "height": 1000})
        tab = context.new_page()
        tab.sent = []
        tab.complaints = []
        tab.on("request", lambda request: tab.sent.append(request))
        tab.on("console", lambda message: message.type == "error" and tab.complaints.append(message.text))
        tab.on("pageerror", lambda error: tab.complaints.append(str(error)))
        yield tab
        context.close()


def type_data(page: Any, text: str) -> None:
    page.fill("#data", text)
    page.wait_for_selector(f'#preview[data-drawn="{text}"]', state="attached", timeout=15000)


def download(page: Any, fmt: str, tmp_path: Path) -> tuple[str, bytes]:
    with page.expect_download(timeout=15000) as info:
        page.click(f'button.download[data-format="{fmt}"]')
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    return info.value.suggested_filename, saved.read_bytes()


def test_generator_previews_as_you_type_and_downloads_codes_that_scan(server, page, tmp_path, decode) -> None:
    page.goto(f"{server.url}/")
    type_data(page, DATA)
    assert "excellent" in page.text_content("#verdict")

    shot = tmp_path / "generator-preview.png"
    page.locator("#preview").screenshot(path=str(shot))
    assert decode(shot.read_bytes()) == [DATA]

    name, png = download(page, "png", tmp_path)
    assert name == "qr-code.png"
    assert decode(png) == [DATA]
    name, svg = download(page, "svg", tmp_path)
    assert name == "qr-code.svg"
    assert decode(svg, "svg") == [DATA]

    page.fill("#size", "1024")
    page.select_option("#error_correction", "H")
    page.fill("#foreground", "#1a237e")
    type_data(page, DATA + "&lang=en")
    _name, big = download(page, "png", tmp_path)
    assert decode(big) == [DATA + "&lang=en"]
    from PIL import Image

    with Image.open(tmp_path / "qr-code.png") as image:
        assert image.size == (1024, 1024)

    full = tmp_path / "generator.png"
    page.screenshot(path=str(full), full_page=True)
    keep_screenshot(full)
    assert page.complaints == []
    assert all("/v1/qr/generate" not in request.url for request in page.sent), "nothing stored without a key"


def test_low_contrast_shows_the_api_verdict_and_blocks_downloads(server, page, tmp_path) -> None:
    page.goto(f"{server.url}/")
    type_data(page, DATA)
    page.fill("#foreground", "#d0d0d0")
    page.wait_for_selector('#verdict[data-state="refused"]', timeout=15000)
    verdict = page.text_content("#verdict")
    assert "below the 3:1 scanners need" in verdict  # the API's own sentence
    assert page.is_disabled('button.download[data-format="png"]')
    shot = tmp_path / "generator-low-contrast.png"
    page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot)

    page.check("#allow_low_contrast")
    page.wait_for_selector('#verdict[data-state="ready"]', timeout=15000)
    assert "below 3:1" in page.text_content("#verdict")
    assert page.is_enabled('button.download[data-format="png"]')


def test_with_a_key_downloads_are_stored_codes_listed_in_the_history(
    server, page, api_key, tmp_path, decode
) -> None:
    page.goto(f"{server.url}/")
    page.fill("#api-key", "qrs_notakey_" + "x" * 40)
    page.click("#save-key")
    page.wait_for_selector("#key-message.bad", timeout=15000)
    assert page.text_content("#key-message") == "The API key is not valid."
    page.complaints.clear()  # Chromium logs the expected 401

    page.fill("#api-key", api_key)
    page.click("#save-key")
    page.wait_for_selector("#key-status", state="visible", timeout=15000)
    assert "plan pro" in page.text_content("#key-summary")
    assert api_key not in page.content(), "the key is not written into the page"

    type_data(page, DATA)
    name, png = download(page, "png", tmp_path)
    assert name.startswith("qr_")
    assert decode(png) == [DATA]
    page.wait_for_selector("#history-list li", timeout=15000)
    assert page.text_content("#history-list li .data") == DATA
    assert page.get_attribute("#history-list li", "data-id") == name.removesuffix(".png")
    thumb = page.locator("#history-list li img")
    # Polled from here: wait_for_function evaluates a string, which the page's CSP forbids.
    for _ in range(150):
        if thumb.evaluate("image => image.complete && image.naturalWidth") == 128:
            break
        page.wait_for_timeout(100)
    assert thumb.evaluate("image => image.naturalWidth") == 128, "the thumbnail loads"
    shot = tmp_path / "generator-history.png"
    page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot)

    # A reload keeps the key (local storage) and the history.
    page.reload()
    page.wait_for_selector("#history-list li", timeout=15000)

    generate = [r for r in page.sent if r.url.endswith("/v1/qr/generate")]
    assert generate and all(r.headers["authorization"] == f"Bearer {api_key}" for r in generate)
    assert all(api_key not in request.url for request in page.sent), "the key never goes in a URL"
    assert page.complaints == []

    page.click("#forget-key")
    assert page.is_visible("#key-form")
    assert page.evaluate("window.localStorage.getItem('qrsvc.apiKey')") is None


def test_text_too_long_for_the_keyless_preview_says_so_and_draws_with_a_key(
    server, page, api_key, tmp_path, decode
) -> None:
    long_text = "<&>" * 500  # fits a code, but not a request line once percent-encoded
    page.goto(f"{server.url}/")
    page.fill("#data", long_text)
    page.wait_for_selector('#verdict[data-state="too-long"]', timeout=15000)
    assert "Use an API key" in page.text_content("#verdict")
    assert page.is_disabled('button.download[data-format="png"]')

    page.fill("#api-key", api_key)
    page.click("#save-key")
    page.wait_for_selector("#key-status", state="visible", timeout=15000)
    page.fill("#data", long_text + "!")
    page.wait_for_selector('button.download[data-format="png"]:enabled', timeout=15000)
    _name, png = download(page, "png", tmp_path)
    assert decode(png) == [long_text + "!"]
