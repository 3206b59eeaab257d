"""A bare Flask + segno app: POST /v1/qr/generate answers a PNG or an SVG (no auth, no storage).

Serve: `gunicorn --workers 2 'bench.bare.segno_app:app'` (what `bench/generate.py` does).
"""

from __future__ import annotations

import io

import segno
from flask import Flask, Response, request

app = Flask(__name__)
MIMETYPES = {"png": "image/png", "svg": "image/svg+xml"}


@app.post("/v1/qr/generate")
def generate() -> Response:
    body = request.get_json()
    fmt = body.get("format", "png")
    qr = segno.make_qr(body["data"], error=body.get("error_correction", "M").lower(), boost_error=False)
    width, _ = qr.symbol_size(border=4)
    out = io.BytesIO()
    qr.save(out, kind=fmt, scale=max(1, int(body.get("size", 512)) // width), border=4)
    return Response(out.getvalue(), mimetype=MIMETYPES[fmt])
