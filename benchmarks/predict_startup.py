"""Time to first prediction: the wall time of one `seqlab predict RUN TEXT` command, from the
interpreter's start to its exit (imports, loading the run, one prediction).

    python benchmarks/predict_startup.py RUN [--text "a gorgeous, witty film"] [--repeats 7] [--before SRC]

RUN is any classify run folder, e.g. one trained with
`seqlab train classify --arch cnn --data rt-polarity --epochs 1 --name cnn-speed --output-dir /tmp/speed`.
`--before SRC` also times the `src` folder of another checkout on the same run (e.g. one made
with `git worktree add /tmp/seqlab-before COMMIT`: `--before /tmp/seqlab-before/src`, run as
`PYTHONPATH=SRC python -m seqlab.cli.main`). Each repeat runs every command once, alternating, so
load swings hit them alike; `python -c "import torch"` is timed alongside as the floor no torch
model can go below. Prints the median, min and max wall seconds, the median CPU seconds
(user + sys: what a quiet machine's wall time approaches) and the load averages while it ran:
this machine is shared, and wall times grow with its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def load_average() -> float:
    return os.getloadavg()[0]


def processor() -> str:
    """The CPU's model name (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command`; fails loudly if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--text", default="a gorgeous, witty film")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--before", type=Path, help="the src folder of another checkout, timed on the same run")
    args = parser.parse_args()

    predict = [sys.executable, "-m", "seqlab.cli.main", "predict", str(args.run), args.text]
    env = dict(os.environ)
    commands = {"this checkout": (predict, env)}
    if args.before:
        commands = {"before": (predict, {**env, "PYTHONPATH": str(args.before)}), **commands}
    commands["python -c 'import torch'"] = ([sys.executable, "-c", "import torch"], env)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    loads = [load_average()]
    for _ in range(args.repeats):
        for name, (command, command_env) in commands.items():
            wall, cpu = timed(command, command_env)
            walls[name].append(wall)
            cpus[name].append(cpu)
            loads.append(load_average())

    print(
        f"{processor()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.repeats} runs each; load average (1 min) {min(loads):.1f}-{max(loads):.1f}\n"
    )
    print("| command | median wall s | min-max wall s | median CPU s |")
    print("|---|---|---|---|")
    for name in commands:
        print(
            f"| {name} | {statistics.median(walls[name]):.2f} | {min(walls[name]):.2f}-{max(walls[name]):.2f} "
            f"| {statistics.median(cpus[name]):.2f} |"
        )


if __name__ == "__main__":
    main()
