"""Run every performance benchmark; each writes benchmarks/results/<name>.{json,md}.

Run: python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "explain_speed.py": ["--quick"],
    "predict_throughput.py": ["--houses", "300"],
    "map_size.py": ["--houses", "300"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    args = ap.parse_args()
    failed = []
    for script, quick_args in BENCHMARKS.items():
        cmd = [sys.executable, str(HERE / script), *(quick_args if args.quick else [])]
        print("$", " ".join(cmd), flush=True)
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(script)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
