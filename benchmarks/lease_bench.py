"""Three machines building one board against one remote, with leases, against one machine alone.

    python benchmarks/lease_bench.py [--shots 6] [--latency 3] [--remote s3|gcs|folder] [--runs 1]

Each "machine" is a `storyboard build` process with its own checkout and local cache; all share
one remote (S3 on a loopback moto server, GCS on the loopback fake of its JSON API, or a shared
folder) and one fake provider that takes `--latency` seconds per shot and logs every submission.
The three machines start together, so they miss every key at the same moment: with leases each
key is paid for once and the machines that lose a race wait and download. Prints wall times, CPU
and the submission counts.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._bench import children_cpu  # noqa: E402


def board(shots: int) -> str:
    lines = ['[film]', 'provider = "fake"', 'duration = 4', '']
    for i in range(shots):
        lines += ['[[shot]]', f'id = "s{i}"', f'prompt = "shot number {i} of the benchmark"', '']
    return "\n".join(lines)


def plugin_env(work: Path) -> dict[str, str]:
    site = work / "site"
    dist = site / "counting_provider-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: counting-provider\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[storyboard.providers]\nfake = tests.fakes.counting_provider:CountingProvider\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYBOARD_", "FAKE_"))}
    return {**env, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def new_remote(kind: str, work: Path, name: str) -> tuple[str, dict[str, str]]:
    if kind == "folder":
        share = work / f"share-{name}"
        share.mkdir()
        return str(share), {}
    if kind == "gcs":
        fake = gcs_fake()
        return f"gs://{fake.make_bucket()}/cache", fake.env()
    from tests.fakes.s3_server import make_bucket, moto_endpoint, s3_env

    endpoint = moto_endpoint()
    return make_bucket(endpoint).upload_url("cache"), s3_env(endpoint)


@functools.lru_cache(maxsize=1)
def gcs_fake() -> Any:
    """The GCS fake, serving from this process's threads while the builds run."""
    from tests.fakes.gcs_server import GcsFake

    return GcsFake().start()


def build_together(count: int, work: Path, text: str, remote: str, env: dict[str, str]) -> tuple[float, float]:
    """Start `count` builds at once; wall seconds until the last one ends, and their CPU."""
    procs = []
    cpu, start = children_cpu(), time.perf_counter()
    for i in range(count):
        checkout = work / f"{Path(remote).name}-machine-{i}-{time.monotonic_ns()}"
        checkout.mkdir()
        (checkout / "storyboard.toml").write_text(text)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "storyboard", "build", str(checkout / "storyboard.toml"), "--yes", "--quiet",
             "--cache-dir", str(checkout / "cache"), "--remote", remote],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a build failed ({proc.returncode}):\n{err}")
    return time.perf_counter() - start, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=6)
    parser.add_argument("--latency", type=float, default=3.0, help="seconds the fake provider takes per shot")
    parser.add_argument("--remote", choices=["s3", "gcs", "folder"], default="s3")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    text = board(args.shots)
    with tempfile.TemporaryDirectory(prefix="lease-bench-") as tmp:
        work = Path(tmp)
        env = plugin_env(work)
        results: dict[int, list[tuple[float, float, Counter[str]]]] = {1: [], 3: []}
        for run in range(args.runs):
            for count in (1, 3):
                remote, remote_env = new_remote(args.remote, work, f"{count}-{run}")
                log = work / f"submissions-{count}-{run}"
                wall, cpu = build_together(count, work, text, remote, {
                    **env, **remote_env, "FAKE_SUBMISSIONS": str(log), "FAKE_RENDER_SECONDS": str(args.latency)})
                paid = Counter(line.split()[0] for line in log.read_text().splitlines())
                results[count].append((wall, cpu, paid))
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{args.shots} shots, provider latency {args.latency:g} s, remote {args.remote}, load {load}")
        for count, label in ((1, "one machine alone"), (3, "three machines at once")):
            walls = [r[0] for r in results[count]]
            cpus = [r[1] for r in results[count]]
            paid = [sum(r[2].values()) for r in results[count]]
            most = max(max(r[2].values()) for r in results[count])
            print(f"  {label:24s} wall median {statistics.median(walls):.2f} s (min {min(walls):.2f}, "
                  f"max {max(walls):.2f}, n={len(walls)}), cpu {statistics.median(cpus):.2f} s, "
                  f"submissions {paid} (most for one key: {most})")
        ratio = statistics.median(r[0] for r in results[3]) / statistics.median(r[0] for r in results[1])
        print(f"  three machines ÷ one: {ratio:.2f}× the wall time")


if __name__ == "__main__":
    main()
