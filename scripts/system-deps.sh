#!/bin/sh
# System libraries that pip cannot install: Pango/HarfBuzz for WeasyPrint, Cairo for
# rasterising SVG in tests, Chromium for the email-preview browser test. Installed with
# apt-get when missing and we are root. `--test` adds what only the test suite needs.
set -eu
missing=""
for lib in libpango-1.0.so.0 libpangoft2-1.0.so.0 libharfbuzz.so.0 libharfbuzz-subset.so.0 libcairo.so.2 libfontconfig.so.1; do
    ldconfig -p 2>/dev/null | grep -q "$lib" || missing="$missing $lib"
done
fc-list 2>/dev/null | grep -qi "dejavu" || missing="$missing fonts"
packages="libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 libcairo2 libfontconfig1 fonts-dejavu-core"
if [ "${1:-}" = "--test" ]; then
    # Headless Chromium renders the shop's email preview in tests (a real browser, not a parser).
    [ -x /usr/bin/chromium ] || missing="$missing chromium"
    packages="$packages chromium chromium-driver"
    # The soak (tests/test_soak.py) starts its own PostgreSQL cluster and Redis server.
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
    command -v redis-server >/dev/null || missing="$missing redis-server"
    packages="$packages postgresql redis-server"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing system libraries:$missing"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
else
    echo "Missing system libraries:$missing. Install: $packages" >&2
    exit 1
fi
