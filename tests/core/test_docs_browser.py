"""The API reference at /docs in a real browser: it draws every operation from local files alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser import chromium, keep_screenshot


def test_docs_page_draws_the_description_with_only_local_requests(
    app: Any, database_url: str, serve: Any, tmp_path: Path
) -> None:
    # `app` migrates the database: `qrsvc serve` refuses one that is not.
    server = serve(
        {"QRSVC_DATABASE_URL": database_url, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}, workers=1
    )
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        sent: list[str] = []
        complaints: list[str] = []
        page.on("request", lambda request: sent.append(request.url))
        page.on("console", lambda message: message.type == "error" and complaints.append(message.text))
        page.on("pageerror", lambda error: complaints.append(str(error)))
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock", timeout=20000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        shot = tmp_path / "docs-reference.png"
        page.screenshot(path=str(shot))
        keep_screenshot(shot)
        context.close()
    flattened = {path.replace("\u200b", "") for path in paths}
    assert {"/v1/qr/generate", "/v1/qr/preview", "/r/{short_code}", "/v1/tickets/scan"} <= flattened
    assert complaints == [], complaints  # a Content-Security-Policy violation is a console error
    assert sent and all(url.startswith(server.url) or url.startswith("data:") for url in sent), sent
