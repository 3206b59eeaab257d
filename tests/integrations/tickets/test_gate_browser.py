"""The /scan gate page in a real browser (headless Chromium) against a real gunicorn.

Tickets reach the page as a person's would: a photo through the file input, a code typed
in, and the camera (Chromium's fake capture device playing a video of the ticket).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.browser import chromium, keep_screenshot
from tests.integrations.tickets.conftest import hours, iso

TIMEOUT = 15000


class Box:
    """The box office and the gate, over HTTP against the served app."""

    def __init__(self, url: str, manager: str, gate: str) -> None:
        self.url = url
        self.manager = {"Authorization": f"Bearer {manager}"}
        self.gate = gate

    def event(self, name: str) -> dict[str, Any]:
        body = {"name": name, "venue": "Town Hall", "starts_at": iso(hours(-1)), "ends_at": iso(hours(3))}
        response = requests.post(f"{self.url}/v1/events", json=body, headers=self.manager, timeout=30)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def ticket(self, event: dict[str, Any], holder: str, seat: str) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/v1/events/{event['id']}/tickets",
            json={"holder_name": holder, "seat": seat},
            headers=self.manager,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def ticket_image(self, ticket: dict[str, Any], path: Path) -> Path:
        response = requests.get(ticket["qr"]["image_url"], timeout=30)
        assert response.status_code == 200
        path.write_bytes(response.content)
        return path


@pytest.fixture
def box(database_url: str, serve: Any, tmp_path: Path, make_key: Callable[..., str]) -> Box:
    server = serve({"QRSVC_DATABASE_URL": database_url, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")})
    return Box(
        server.url,
        make_key("box office", "unlimited", ("tickets", "qr:read")),
        make_key("north door", "unlimited", ("tickets:scan",)),
    )


def open_gate(browser: Any, box: Box, event: dict[str, Any]) -> Any:
    """The scan page, set up as an operator would: key pasted, event picked, gate named."""
    context = browser.new_context(viewport={"width": 420, "height": 860}, device_scale_factor=1)
    page = context.new_page()
    page.sent = []
    page.complaints = []
    page.on("request", lambda request: page.sent.append(request))
    page.on("pageerror", lambda error: page.complaints.append(str(error)))
    page.goto(f"{box.url}/scan")
    page.fill("#gate-key", box.gate)
    page.click("#save-key")
    page.wait_for_selector("#event:enabled", timeout=TIMEOUT)
    page.select_option("#event", event["id"])
    page.fill("#gate-name", "North door")
    assert page.text_content("#context") == f"{event['name']} · North door"
    return page


def start_scanning(page: Any) -> Any:
    page.click("#done")
    page.wait_for_selector("#setup", state="hidden", timeout=TIMEOUT)
    return page


def verdict(page: Any, result: str) -> dict[str, str]:
    page.wait_for_selector(f'#verdict[data-result="{result}"]', state="visible", timeout=TIMEOUT)
    shown = {part: page.text_content(f"#verdict-{part}") for part in ("headline", "who", "detail")}
    return shown


def dismiss(page: Any) -> None:
    page.click("#verdict")
    page.wait_for_selector("#verdict", state="hidden", timeout=TIMEOUT)


def scans_sent(page: Any) -> list[dict[str, Any]]:
    return [json.loads(r.post_data) for r in page.sent if r.url.endswith("/v1/tickets/scan")]


def shoot(page: Any, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    keep_screenshot(shot)


def test_a_photo_admits_once_then_shows_already_used_with_the_first_gate(box, tmp_path) -> None:
    concert = box.event("Spring Concert")
    other = box.event("Jazz Night")
    ada = box.ticket(concert, "Ada Lovelace", "A12")
    photo = box.ticket_image(ada, tmp_path / "ada.png")
    with chromium() as browser:
        page = open_gate(browser, box, concert)
        shoot(page, tmp_path, "scan-setup.png")
        start_scanning(page)
        shoot(page, tmp_path, "scan-ready.png")

        page.set_input_files("#photo", str(photo))
        shown = verdict(page, "admitted")
        assert shown["headline"] == "ADMIT"
        assert shown["who"] == "Ada Lovelace · seat A12"
        shoot(page, tmp_path, "scan-admit.png")
        dismiss(page)

        page.set_input_files("#photo", str(photo))
        shown = verdict(page, "already_used")
        assert shown["headline"] == "ALREADY USED"
        assert shown["who"] == "Ada Lovelace · seat A12"
        assert shown["detail"].startswith("First used ")
        assert shown["detail"].endswith(" at North door")
        shoot(page, tmp_path, "scan-already-used.png")
        dismiss(page)

        # A ticket of another event, typed in by hand.
        bob = box.ticket(other, "Bob Moog", "C3")
        page.fill("#token", bob["token"])
        page.press("#token", "Enter")
        shown = verdict(page, "wrong_event")
        assert shown["headline"] == "WRONG EVENT"
        assert shown["detail"] == "This ticket is for Jazz Night"
        shoot(page, tmp_path, "scan-wrong-event.png")
        dismiss(page)

        page.fill("#token", "not a ticket")
        page.press("#token", "Enter")
        assert verdict(page, "malformed")["headline"] == "MALFORMED"

        sent = scans_sent(page)
        assert len(sent) == 4
        assert len({scan["nonce"] for scan in sent}) == 4, "a fresh nonce per scan"
        assert len({scan["device"] for scan in sent}) == 1, "one stable device id"
        assert all(scan["event_id"] == concert["id"] and scan["gate"] == "North door" for scan in sent)
        scan_requests = [r for r in page.sent if r.url.endswith("/v1/tickets/scan")]
        assert all(r.headers["authorization"] == f"Bearer {box.gate}" for r in scan_requests)
        assert all(box.gate not in r.url for r in page.sent), "the key never goes in a URL"
        assert page.complaints == []


def test_retries_after_network_failures_reuse_the_scans_nonce(box, tmp_path) -> None:
    concert = box.event("Spring Concert")
    first = box.ticket(concert, "Grace Hopper", "B1")
    second = box.ticket(concert, "Alan Turing", "B2")
    with chromium() as browser:
        page = start_scanning(open_gate(browser, box, concert))
        failures = {"left": 1}

        def flaky(route: Any) -> None:
            if failures["left"] > 0:
                failures["left"] -= 1
                route.abort("connectionreset")
            else:
                route.continue_()

        page.route("**/v1/tickets/scan", flaky)

        # One lost call: the page tries again by itself, with the same nonce.
        page.fill("#token", first["token"])
        page.press("#token", "Enter")
        assert verdict(page, "admitted")["who"] == "Grace Hopper · seat B1"
        dismiss(page)
        nonces = [scan["nonce"] for scan in scans_sent(page)]
        assert len(nonces) == 2 and nonces[0] == nonces[1]

        # Every automatic attempt lost: the scan waits for Retry, which sends the same nonce.
        failures["left"] = 3
        page.fill("#token", second["token"])
        page.press("#token", "Enter")
        page.wait_for_selector("#retry", state="visible", timeout=TIMEOUT)
        assert "Retry sends it again" in page.text_content("#status")
        shoot(page, tmp_path, "scan-retry.png")
        page.click("#retry")
        assert verdict(page, "admitted")["who"] == "Alan Turing · seat B2"
        nonces = [scan["nonce"] for scan in scans_sent(page)][2:]
        assert len(nonces) == 4 and len(set(nonces)) == 1
        dismiss(page)

        # The ticket scanned again is a new scan: a new nonce, and the server says already used.
        page.fill("#token", second["token"])
        page.press("#token", "Enter")
        verdict(page, "already_used")
        assert scans_sent(page)[-1]["nonce"] != nonces[0]


def write_y4m(picture: Path, path: Path, frames: int = 5) -> Path:
    """A short Y4M video (4:2:0) of the ticket on white: Chromium's fake camera plays it in a loop."""
    with Image.open(picture) as opened:
        code = opened.convert("RGB")  # at its own size: scaling would make modules uneven
    frame = Image.new("RGB", (code.width + 128, code.height + 48), "white")
    frame.paste(code, (64, 24))
    y, cb, cr = frame.convert("YCbCr").split()
    half = (frame.width // 2, frame.height // 2)
    planes = y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    video = io.BytesIO()
    video.write(f"YUV4MPEG2 W{frame.width} H{frame.height} F10:1 Ip A1:1 C420jpeg\n".encode())
    for _ in range(frames):
        video.write(b"FRAME\n" + planes)
    path.write_bytes(video.getvalue())
    return path


def test_the_camera_admits_a_ticket_once_while_it_stays_in_view(box, tmp_path) -> None:
    concert = box.event("Spring Concert")
    ticket = box.ticket(concert, "Ada Lovelace", "A12")
    video = write_y4m(box.ticket_image(ticket, tmp_path / "ticket.png"), tmp_path / "ticket.y4m")
    fake_camera = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    with chromium(fake_camera) as browser:
        page = start_scanning(open_gate(browser, box, concert))
        page.click("#start-camera")
        assert verdict(page, "admitted")["who"] == "Ada Lovelace · seat A12"
        page.wait_for_selector("#verdict", state="hidden", timeout=TIMEOUT)  # it clears by itself
        shoot(page, tmp_path, "scan-camera.png")
        page.wait_for_timeout(1500)
        assert len(scans_sent(page)) == 1, "a ticket still in view is not scanned again"
        assert page.complaints == []
