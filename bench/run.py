"""Run every benchmark in bench/ one after another (`make bench`); each prints its own figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["generate.py", "batch.py", "redirects.py", "tickets.py", "shop.py", "labels.py", "crm.py", "soak.py"]


def main() -> int:
    scripts = [HERE / name for name in ORDER if (HERE / name).exists()]
    selected = sys.argv[1:]
    if selected:
        scripts = [s for s in scripts if s.stem in selected]
    failed = 0
    for script in scripts:
        print(f"\n=== bench/{script.name} ===", flush=True)
        failed += subprocess.run([sys.executable, str(script)], cwd=HERE, check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
