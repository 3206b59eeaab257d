"""The render cache, the render pool and the PNG writer."""

from __future__ import annotations

import importlib
import multiprocessing
from typing import Any

import pytest
from PIL import Image

from qrsvc import codes
from qrsvc.options import QrOptions
from qrsvc.qr import Style, encode, layout, parse_color, render
from qrsvc.qr.cache import RenderCache
from qrsvc.qr.pool import Drawn, Job, Refused, RenderPool, draw

# The module (`qrsvc.qr.render` the attribute is the function of that name).
renderer = importlib.import_module("qrsvc.qr.render")


def test_cache_evicts_least_recently_used_beyond_its_byte_budget() -> None:
    cache: RenderCache[str] = RenderCache(max_bytes=100)
    cache.put("a", "A", 40)
    cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C", 40)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == ("A", "C")
    cache.put("huge", "H", 101)
    assert cache.get("huge") is None
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.hits, stats.misses) == (2, 80, 3, 2)


def test_repeated_renders_come_from_the_cache(app) -> None:
    options = QrOptions(data="cached", size=300)
    with app.app_context():
        first = codes.render_images([options], "zxing")
        again = codes.render_images([options, QrOptions(data="cached", size=301)], "zxing")
    assert (first.cache_hits, again.cache_hits) == (0, 1)
    assert again.results[0].content == first.results[0].content  # type: ignore[union-attr]


def test_responses_say_whether_the_image_came_from_the_cache(client, auth, decode) -> None:
    body = {"data": "https://example.com/cache-header", "size": 300}
    first = client.post("/v1/qr/generate", json=body, headers=auth)
    again = client.post("/v1/qr/generate", json=body, headers=auth)
    other = client.post("/v1/qr/generate", json={**body, "size": 301}, headers=auth)
    assert [r.headers["X-QR-Cache"] for r in (first, again, other)] == ["miss", "hit", "miss"]
    assert again.data == first.data and decode(again.data) == [body["data"]]
    public = client.get(f"/v1/qr/{first.headers['X-QR-Id']}.png", query_string={"size": 300})
    assert public.headers["X-QR-Cache"] == "hit" and public.data == first.data


@pytest.mark.parametrize("app_config", [{"RENDER_CACHE_BYTES": 0}])
def test_a_zero_cache_never_hits(app) -> None:
    with app.app_context():
        codes.make_image(QrOptions(data="x"), "zxing")
        assert codes.render_images([QrOptions(data="x")], "zxing").cache_hits == 0


def test_a_new_renderer_version_never_serves_cached_bytes(app, monkeypatch, decode) -> None:
    options = QrOptions(data="versioned")
    original = renderer._WRITERS["png"]
    with app.app_context():
        old = codes.make_image(options, "zxing").content
        old_etag = codes.image_etag(options, "zxing")

        def new_writer(*args: Any) -> bytes:
            return original(*args) + b"new renderer"

        monkeypatch.setitem(renderer._WRITERS, "png", new_writer)
        # Same version: the cache answers with the old bytes (why the version must be bumped) …
        assert codes.make_image(options, "zxing").content == old
        # … a bumped version changes the key, so the new renderer runs.
        monkeypatch.setattr(renderer, "RENDERER_VERSION", "next")
        new = codes.make_image(options, "zxing").content
        assert new.endswith(b"new renderer") and new != old
        assert codes.image_etag(options, "zxing") != old_etag
    assert decode(new) == ["versioned"]


def _jobs() -> list[Job]:
    jobs = [Job(f"pooled {i}", "H", None, "zxing", "png", Style(256)) for i in range(40)]
    jobs[7] = Job("x" * 3000, "H", None, "zxing", "png", Style(256))
    jobs[9] = Job("A" * 500, "L", None, "zxing", "png", Style(64))
    return jobs


def test_pool_draws_the_same_bytes_in_order_with_refusals_in_place(decode) -> None:
    pool = RenderPool(processes=2, min_jobs=2)
    try:
        pooled = list(pool.draw_all(_jobs()))
    finally:
        pool.close()
    assert pooled == [draw(job) for job in _jobs()]
    assert isinstance(pooled[7], Refused) and pooled[7].reason == "data_too_long"
    assert isinstance(pooled[9], Refused) and pooled[9].reason == "size_too_small"
    assert isinstance(pooled[3], Drawn) and decode(pooled[3].content) == ["pooled 3"]


def _draw_in_child(pool: RenderPool, connection: Any) -> None:
    connection.send([d.content for d in pool.draw_all(_jobs()[:10]) if isinstance(d, Drawn)])
    pool.close()


def test_pool_inherited_through_fork_starts_its_own_processes() -> None:
    pool = RenderPool(processes=2, min_jobs=2)
    try:
        expected = [d.content for d in pool.draw_all(_jobs()[:10]) if isinstance(d, Drawn)]
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_draw_in_child, args=(pool, sender))
        child.start()
        assert receiver.poll(60), "the forked process did not answer"
        assert receiver.recv() == expected
        child.join(30)
        assert child.exitcode == 0
        # The parent's pool is untouched by the child's.
        assert [d.content for d in pool.draw_all(_jobs()[:10]) if isinstance(d, Drawn)] == expected
    finally:
        pool.close()


def _kill_render_processes(pool: RenderPool) -> Any:
    """Draw once (so the pool's processes exist), SIGKILL them all; returns the pool's executor."""
    import os
    import signal

    assert list(pool.draw_all(_jobs())) == [draw(job) for job in _jobs()]
    first = pool._executor
    assert first is not None
    for pid in list(first._processes):  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    return first


def test_a_killed_render_process_costs_speed_not_results(caplog) -> None:
    pool = RenderPool(processes=2, min_jobs=2)
    try:
        expected = [draw(job) for job in _jobs()]
        first = _kill_render_processes(pool)
        assert list(pool.draw_all(_jobs())) == expected  # drawn here while the pool is broken
        assert "render pool broken" in caplog.text
        assert list(pool.draw_all(_jobs())) == expected  # and a new pool next time
        assert pool._executor is not None and pool._executor is not first
    finally:
        pool.close()


def test_a_pool_that_already_knows_it_is_broken_is_replaced_before_drawing(caplog) -> None:
    """A render process died between two requests and the pool noticed: the next request still draws."""
    import time

    pool = RenderPool(processes=2, min_jobs=2)
    try:
        expected = [draw(job) for job in _jobs()]
        first = _kill_render_processes(pool)
        deadline = time.monotonic() + 30
        while not first._broken and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)  # the executor's manager thread marks it broken
        assert first._broken  # type: ignore[attr-defined]
        assert list(pool.draw_all(_jobs())) == expected
        assert "render pool broken" in caplog.text
        assert pool._executor is not None and pool._executor is not first
    finally:
        pool.close()


def test_render_processes_leave_when_their_parent_dies(tmp_path) -> None:
    import subprocess
    import sys
    import time

    import psutil

    script = (
        "from qrsvc.qr.pool import RenderPool, Job\n"
        "from qrsvc.qr import Style\n"
        "import os, sys\n"
        "pool = RenderPool(2, 2)\n"
        "list(pool.draw_all([Job(str(i), 'M', None, 'zxing', 'png', Style(128)) for i in range(8)]))\n"
        "print(' '.join(str(p) for p in pool._executor._processes), flush=True)\n"
        "os._exit(0)  # like a SIGKILL: no atexit, no pool shutdown\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    children = [int(pid) for pid in done.stdout.split()]
    assert len(children) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(pid) for pid in children):
        time.sleep(0.2)
    alive = [pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert alive == []


def test_small_batches_stay_in_process() -> None:
    pool = RenderPool(processes=2, min_jobs=64)
    list(pool.draw_all(_jobs()))
    assert pool._executor is None


@pytest.mark.parametrize(
    ("size", "quiet_zone", "foreground", "background", "data"),
    [
        (512, 4, "#000000", "#ffffff", "https://example.com/a"),
        (333, 0, "#1a1a6a", "#ffeedd", "odd size, no quiet zone"),
        (64, 1, "#000000", "transparent", "tiny"),
        (1000, 10, "#00000080", "#ffffff", "x" * 900),
    ],
)
def test_png_writer_draws_exactly_the_indexed_image(size, quiet_zone, foreground, background, data) -> None:
    import io

    symbol = encode(data, "M")
    style = Style(size, quiet_zone, parse_color(foreground), parse_color(background, allow_transparent=True))
    written = Image.open(io.BytesIO(render(symbol, "png", style)))
    expected = renderer._indexed(symbol, style, layout(symbol.width, style))
    assert written.size == (size, size) and written.mode == "P"
    assert written.convert("RGBA").tobytes() == expected.convert("RGBA").tobytes()
