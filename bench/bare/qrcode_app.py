"""A bare Flask + python-qrcode app: POST /v1/qr/generate answers a PNG (no auth, no storage).

Serve: `gunicorn --workers 2 'bench.bare.qrcode_app:app'` (what `bench/generate.py` does).
"""

from __future__ import annotations

import io

import qrcode
from flask import Flask, Response, request
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q

app = Flask(__name__)
LEVELS = {"L": ERROR_CORRECT_L, "M": ERROR_CORRECT_M, "Q": ERROR_CORRECT_Q, "H": ERROR_CORRECT_H}


@app.post("/v1/qr/generate")
def generate() -> Response:
    body = request.get_json()
    size = int(body.get("size", 512))
    qr = qrcode.QRCode(error_correction=LEVELS[body.get("error_correction", "M")], border=4)
    qr.add_data(body["data"])
    qr.make(fit=True)
    modules = qr.modules_count + 8
    qr.box_size = max(1, size // modules)
    image = qr.make_image().get_image().convert("L").resize((size, size))  # nearest: sharp modules
    out = io.BytesIO()
    image.save(out, format="PNG")
    return Response(out.getvalue(), mimetype="image/png")
