"""Benchmark: a 300-label avery-5160 shelf-label PDF, end to end through `render_shelf_labels`.

Target: ≤ 2 s on the 2-core CI machine. Prints the median wall and CPU time of
several runs, where the time goes (QR drawing + template, WeasyPrint layout,
PDF writing), and baselines measured in the same run:

- "naive absolute": this module's first version — absolutely positioned labels
  with inline styles, the core's palette PNG as a data: URI per label (WeasyPrint
  converts those to RGB and re-encodes them twice), two font faces;
- "per-sheet grid": a CSS grid per sheet with a flex box per label (the issue
  quotes ~3.5 s for 300 labels for its per-sheet layout);
- "one big grid": every label in one CSS grid that WeasyPrint splits into pages
  (quoted at 22 s for 300).
The two grid baselines are measured on fewer labels (`--grid-labels`) because
they are that slow.

`--worst` measures instead the worst PDF each layout allows under the label limits
(`LabelLimits`, default the shop's `QRSVC_LABEL_MAX_*` defaults): as many labels as
the label and page limits allow, every one a distinct code, at the layout's dpi, and
again at 1200 dpi with as many distinct codes as the pixel limit allows; and the
packing label at 1200 dpi. Each must finish well inside gunicorn's 30 s timeout.

    python bench/labels.py --worst [--runs 3] [--max-labels N --max-pages N --max-megapixels X]

The HTTP end-to-end figure (request → bytes through the shop view) is measured
after the shop branch is merged; this is the function the view calls.

    python bench/labels.py [--labels 300] [--runs 5]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jinja2  # noqa: E402
import weasyprint  # noqa: E402

from integrations.shop.labels import documents as shop_labels  # noqa: E402
from integrations.shop.labels.documents import (  # noqa: E402
    PackingLabel,
    ShelfLabel,
    render_packing_label,
    render_shelf_labels,
)
from integrations.shop.labels.layouts import LAYOUTS  # noqa: E402
from integrations.shop.labels.limits import DEFAULT_LIMITS, LabelLimits, packing_cost, shelf_cost  # noqa: E402
from qrsvc.pdf import url_fetcher  # noqa: E402
from qrsvc.printing import module_dots  # noqa: E402
from qrsvc.qr import Style, encode, render  # noqa: E402

_GRID = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html><html><head><meta charset="utf-8"><style>
@page { size: 8.5in 11in; margin: 0.5in 0 0 0.1875in; }
body { margin: 0; font-family: "DejaVu Sans"; }
{% if one_grid %}
.sheet { display: grid; grid-template-columns: repeat(3, 2.625in); grid-auto-rows: 1in; column-gap: 0.125in; }
{% else %}
.sheet { display: grid; grid-template-columns: repeat(3, 2.625in); grid-template-rows: repeat(10, 1in);
         column-gap: 0.125in; break-after: page; }
{% endif %}
.label { display: flex; align-items: center; overflow: hidden; }
.label img { flex: none; image-rendering: pixelated; }
.text { display: flex; flex-direction: column; padding-left: 1mm; min-width: 0; }
.name { font-weight: bold; font-size: 8pt; overflow: hidden; max-height: 2.4em; }
.sku { font-size: 7pt; } .price { font-size: 11pt; font-weight: bold; }
</style></head><body>
{% for sheet in sheets %}<div class="sheet">
{% for label, uri, size in sheet %}<div class="label" style="width: 2.625in; height: 1in">
<img src="{{ uri }}" style="width: {{ size }}in; height: {{ size }}in; margin-left: 1mm">
<div class="text"><div class="name">{{ label.name }}</div><div class="sku">SKU {{ label.sku }}</div>
{% if label.price %}<div class="price">{{ label.price }}</div>{% endif %}</div></div>
{% endfor %}</div>{% endfor %}
</body></html>"""
)

_ABSOLUTE = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html><html><head><meta charset="utf-8"><style>
@page { size: 8.5in 11in; margin: 0; }
body { margin: 0; font-family: "DejaVu Sans"; line-height: 1.15; }
.page { position: relative; width: 8.5in; height: 11in; break-after: page; }
.label { position: absolute; width: 1.57in; height: 0.9in; overflow: hidden; }
.qr { position: absolute; image-rendering: pixelated; }
.name { font-weight: bold; font-size: 8pt; max-lines: 2; block-ellipsis: auto; overflow: hidden; }
.sku { font-size: 7pt; } .price { font-size: 11pt; font-weight: bold; }
.line { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
</style></head><body>
{% for sheet in sheets %}<div class="page">
{% for label, uri, size, x, y in sheet %}
<div class="label" style="left: {{ x + 1 }}in; top: {{ y + 0.05 }}in"><div class="name">{{ label.name }}</div>
<div class="sku line">SKU {{ label.sku }}</div>
{% if label.price %}<div class="price line">{{ label.price }}</div>{% endif %}
</div>
<img class="qr" src="{{ uri }}"
 style="left: {{ x + 0.04 }}in; top: {{ y + 0.04 }}in; width: {{ size }}in; height: {{ size }}in">
{% endfor %}</div>{% endfor %}
</body></html>"""
)


def _palette_code(label: ShelfLabel) -> tuple[str, float]:
    """The core's own PNG (1-bit palette) as a data: URI, drawn again for every label."""
    symbol = encode(label.qr_data, "H")
    dots = module_dots(symbol.width, 23.4, 300)
    pixels = (symbol.width + 8) * dots
    png = render(symbol, "png", Style(size=pixels, quiet_zone=4))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii"), pixels / 300


def _pdf(html: str) -> bytes:
    pdf: bytes = weasyprint.HTML(string=html, base_url="data:,", url_fetcher=url_fetcher()).write_pdf()
    return pdf


def naive_absolute(labels: Sequence[ShelfLabel]) -> bytes:
    """Baseline: absolute positions in inline styles, one palette PNG data: URI per label."""
    sheets = []
    for first in range(0, len(labels), 30):
        sheet = []
        for position, label in enumerate(labels[first : first + 30]):
            uri, size = _palette_code(label)
            row, column = divmod(position, 3)
            sheet.append((label, uri, f"{size:.6f}", 0.1875 + 2.75 * column, 0.5 + row))
        sheets.append(sheet)
    return _pdf(_ABSOLUTE.render(sheets=sheets))


def naive_grid(labels: Sequence[ShelfLabel], one_grid: bool = False) -> bytes:
    """Baseline: a CSS grid per sheet (or one for all) with a flex box per label."""
    cells = [(label, *_palette_code(label)) for label in labels]
    cells = [(label, uri, f"{size:.6f}") for label, uri, size in cells]
    sheets = [cells] if one_grid else [cells[i : i + 30] for i in range(0, len(cells), 30)]
    return _pdf(_GRID.render(sheets=sheets, one_grid=one_grid))


def make_labels(count: int, distinct: int | None = None) -> list[ShelfLabel]:
    distinct = distinct or count
    return [
        ShelfLabel(
            name=f"Organic fair-trade coffee beans, dark roast, 1 kg bag {i % distinct}",
            sku=f"COF-{i % distinct:05d}",
            price=f"€{10 + i % distinct}.50",
            qr_data=f"https://shop.example.com/p/COF-{i % distinct:05d}",
        )
        for i in range(count)
    ]


def measure(function: Callable[[], bytes], runs: int) -> tuple[float, float, int]:
    """Median wall and CPU seconds over `runs` calls, and the size of the last PDF."""
    walls, cpus, size = [], [], 0
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        size = len(function())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), size


def breakdown(labels: Sequence[ShelfLabel], runs: int) -> dict[str, float]:
    """Median seconds of our own preparation, WeasyPrint parsing + layout, and drawing + PDF writing."""
    captured: list[tuple[str, Mapping[str, bytes]]] = []
    real_write = shop_labels.html_to_pdf

    def capture(html: str, images: Mapping[str, bytes]) -> bytes:
        captured.append((html, images))
        return b""

    shop_labels.html_to_pdf = capture
    try:
        prepare = measure(lambda: render_shelf_labels(labels), runs)[0]
    finally:
        shop_labels.html_to_pdf = real_write
    html, images = captured[-1]
    layouts, writes = [], []
    for _ in range(runs):
        start = time.perf_counter()
        fetcher = url_fetcher(images)
        document = weasyprint.HTML(string=html, base_url="data:,", url_fetcher=fetcher).render()
        middle = time.perf_counter()
        document.write_pdf()
        layouts.append(middle - start)
        writes.append(time.perf_counter() - middle)
    return {
        "qr codes + template": prepare,
        "weasyprint parse+layout": statistics.median(layouts),
        "weasyprint draw+pdf": statistics.median(writes),
    }


def report(name: str, figures: tuple[float, float, int]) -> None:
    wall, cpu, size = figures
    print(f"  {name:<32}: {wall:.3f} s / {cpu:.3f} s CPU  ({size / 1e6:.2f} MB)")


def _most_distinct(layout: str, count: int, dpi: int, limits: LabelLimits) -> int:
    """The most distinct codes among `count` labels that stay inside the pixel limit."""
    per_code = shelf_cost(layout, 1, 1, dpi=dpi).pixels
    return max(1, min(count, int(limits.megapixels * 1e6 // per_code)))


def worst_cases(limits: LabelLimits, runs: int) -> None:
    """Time the worst PDF each layout allows under `limits` (see the module docstring)."""
    print(
        f"worst allowed cases: ≤ {limits.labels} labels, ≤ {limits.pages} pages, "
        f"≤ {limits.megapixels:g} megapixels; median of {runs} runs, wall / CPU"
    )
    render_shelf_labels(make_labels(1))  # fonts and cffi loaded, as in a serving worker
    slowest = 0.0
    for name, layout in LAYOUTS.items():
        count = min(limits.labels, limits.pages * layout.per_sheet)
        for dpi in (layout.dpi, 1200):
            distinct = _most_distinct(name, count, dpi, limits)
            cost = shelf_cost(name, count, distinct, dpi=dpi)
            batch = make_labels(count, distinct)
            figures = measure(
                lambda batch=batch, name=name, dpi=dpi: render_shelf_labels(  # type: ignore[misc]
                    batch, name, dpi=dpi, limits=limits
                ),
                runs,
            )
            slowest = max(slowest, figures[0])
            label = f"{name} {dpi} dpi, {count} labels/{distinct} codes"
            report(label, figures)
            print(f"  {'':<32}  {cost.pages} pages, ≤ {cost.pixels / 1e6:.1f} megapixels")
    packing = PackingLabel(
        "#1001", ("Ada Lovelace", "12 Example Street", "London"), 3, "https://t.example/o/1"
    )
    figures = measure(lambda: render_packing_label(packing, dpi=1200, limits=limits), runs)
    report(f"packing label 1200 dpi (≤ {packing_cost(1200).pixels / 1e6:.1f} MP)", figures)
    slowest = max(slowest, figures[0])
    print(f"\nslowest worst case: {slowest:.3f} s wall (gunicorn kills a worker at 30 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--grid-labels", type=int, default=60, help="labels for the slow grid baselines")
    parser.add_argument("--worst", action="store_true", help="time the worst case of every layout instead")
    parser.add_argument("--max-labels", type=int, default=DEFAULT_LIMITS.labels)
    parser.add_argument("--max-pages", type=int, default=DEFAULT_LIMITS.pages)
    parser.add_argument("--max-megapixels", type=float, default=DEFAULT_LIMITS.megapixels)
    args = parser.parse_args()
    if args.worst:
        worst_cases(LabelLimits(args.max_labels, args.max_pages, args.max_megapixels), args.runs)
        return
    count, runs = args.labels, args.runs
    distinct = make_labels(count)
    copies = make_labels(count, distinct=count // 3)
    assert LAYOUTS["avery-5160"].per_sheet == 30

    cold = time.perf_counter()
    render_shelf_labels(distinct[:1])
    print(f"first call in a process (fonts, cffi): {time.perf_counter() - cold:.3f} s (1 label)")

    print(f"\n{count} labels, avery-5160, {-(-count // 30)} sheets; median of {runs} runs, wall / CPU")
    ours = measure(lambda: render_shelf_labels(distinct), runs)
    report(f"ours, {count} distinct codes", ours)
    shared = measure(lambda: render_shelf_labels(copies), runs)
    report(f"ours, {count // 3} codes × 3 copies", shared)
    for stage, seconds in breakdown(distinct, runs).items():
        print(f"    {stage:<24}: {seconds:.3f} s")

    base_runs = max(1, runs // 2)
    baseline = measure(lambda: naive_absolute(distinct), base_runs)
    report(f"baseline naive absolute ({base_runs} runs)", baseline)
    ratio = f"{baseline[0] / ours[0]:.2f}× wall, {baseline[1] / ours[1]:.2f}× CPU"
    print(f"  {'speed-up vs naive absolute':<32}: {ratio}")

    small = args.grid_labels
    if small:
        subset = distinct[:small]
        mine = measure(lambda: render_shelf_labels(subset), runs)
        sheet_grid = measure(lambda: naive_grid(subset), 1)
        one_grid = measure(lambda: naive_grid(subset, one_grid=True), 1)
        print(f"\n{small} labels ({-(-small // 30)} sheets), wall: ours {mine[0]:.3f} s")
        print(f"  per-sheet grid + flex          : {sheet_grid[0]:.3f} s ({sheet_grid[0] / mine[0]:.1f}×)")
        print(f"  one big grid + flex            : {one_grid[0]:.3f} s ({one_grid[0] / mine[0]:.1f}×)")
    verdict = "meets" if ours[0] <= 2.0 else "MISSES"
    print(f"\ntarget ≤ 2 s for {count} labels: {verdict} ({ours[0]:.3f} s wall; machine shared, see CPU)")


if __name__ == "__main__":
    main()
