"""Start-up: ``storyboard --help``, with hyperfine when it is installed, else a loop of runs.

    python benchmarks/startup.py [--runs 30] [--exe PATH]

hyperfine (``apt-get install -y hyperfine``) runs it with 3 warm-up runs and reports its
statistics, then the median and the mean CPU time (user + system) are printed; without it, the
median of ``--runs`` subprocess runs after 3 warm-ups.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import compile_package, load, run_timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--exe", default=str(Path(sys.executable).with_name("storyboard")),
                        help="the storyboard console script (default: beside this Python)")
    args = parser.parse_args()
    compile_package()  # timed runs load bytecode, as an installed storyboard does
    cmd = [args.exe, "--help"]
    print(load())
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        with tempfile.TemporaryDirectory() as tmp:
            export = Path(tmp) / "hyperfine.json"
            subprocess.run([hyperfine, "--warmup", "3", "--runs", str(args.runs), "-N",
                            "--export-json", str(export), " ".join(cmd)], check=True)
            result = json.loads(export.read_text())["results"][0]
        print(f"median {result['median']:.3f} s, min {result['min']:.3f} s, "
              f"cpu (user + system, mean) {result['user'] + result['system']:.3f} s")
    else:
        run_timed(cmd, runs=3)
        print(f"{' '.join(cmd)}: {run_timed(cmd, runs=args.runs).row()}")
    print(load())


if __name__ == "__main__":
    main()
