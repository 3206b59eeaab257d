"""Bare Flask apps the benchmarks compare `qrsvc serve` with: no auth, no limits, no storage.

Each is what a person would write in an afternoon: read the JSON, make the code with a
popular library, answer the image. `bench/generate.py` serves them with gunicorn's default
sync workers, as many as `qrsvc serve` has, and measures them in the same run as us.
"""
