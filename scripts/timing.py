#!/usr/bin/env python3
"""Where the time of `make test` goes.

    timing.py run NAME -- COMMAND...   run a step of make test and record its time
    timing.py stamp STEPS_FILE         copy a Molecule run's output from stdin to
                                       stdout, recording when each of its steps began
    timing.py table                    print the timing table and write it to
                                       .cache/test-timing.txt
    timing.py progress                 one line: the step each running scenario
                                       is in, and for how long

Records live in .cache/timing/: steps.tsv (name, seconds, exit code) and, per
scenario, the start of each Molecule step. The slowest tests come from
pytest's --durations section in each scenario's log.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / ".cache/timing"
LOGS = ROOT / ".cache/molecule-logs"
TABLE = ROOT / ".cache/test-timing.txt"
STEPS = "dependency|cleanup|destroy|syntax|create|prepare|converge|idempotence|side_effect|verify"
# Molecule announces each step with the scenario, the step and "Executing".
STEP_START = re.compile(rf"\b({STEPS})\b\W+Executing\b")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
DURATION = re.compile(r"^(\d+\.\d+)s (call|setup|teardown)\s*(\S*)")
BOX = re.compile(r"^\s*\u2502 ?")
SUMMARY = re.compile(r"\d+ (passed|failed|errors?)\b")
# After the listed tests: "(N durations < 3s hidden. ...)".
HIDDEN = re.compile(r"^\(\d+ durations? < ")
SLOWEST = 5
# pytest's short summary (FAILED / ERROR and a test's path; not Ansible's
# "FAILED - RETRYING" of a task that waits) and Ansible's failed tasks.
FAILED_TEST = re.compile(r"^(FAILED|ERROR) [^\s-]")
FAILED_TASK = re.compile(r"^(fatal|failed): \[")
FAILURES_SHOWN = 8


def run(name: str, command: list[str]) -> int:
    RECORDS.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    rc = subprocess.call(command)
    with (RECORDS / "steps.tsv").open("a") as out:
        out.write(f"{name}\t{time.monotonic() - start:.0f}\t{rc}\n")
    return rc


def stamp(steps_file: str) -> int:
    start = time.monotonic()
    path = Path(steps_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as steps:
        for line in sys.stdin.buffer:
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
            match = STEP_START.search(ANSI.sub("", line.decode("utf-8", "replace")))
            if match:
                steps.write(f"{match.group(1)}\t{time.monotonic() - start:.1f}\n")
                steps.flush()
        steps.write(f"end\t{time.monotonic() - start:.1f}\n")
    return 0


def scenario_steps(path: Path) -> list[tuple[str, float]]:
    """(step, seconds) in order; a step run twice (destroy) is listed twice."""
    marks = [(name, float(at)) for name, at in (line.split("\t") for line in path.read_text().splitlines())]
    return [(name, nxt - at) for (name, at), (_, nxt) in zip(marks, marks[1:])]


def slowest_tests(log: Path) -> list[tuple[float, str]]:
    """pytest's --durations section of a scenario's log; Molecule wraps its long lines."""
    if not log.exists():
        return []
    found: list[list] = []
    inside = False
    for raw in ANSI.sub("", log.read_text(errors="replace")).splitlines():
        line = BOX.sub("", raw).strip()
        if not inside:
            inside = "slowest" in line and "durations" in line
            continue
        if SUMMARY.search(line) or HIDDEN.match(line):
            break
        match = DURATION.match(line)
        if match:
            found.append([float(match.group(1)), f"{match.group(3)} ({match.group(2)})"])
        elif found and line and "=" not in line:
            found[-1][1] = found[-1][1].replace(" (", line + " (", 1)
    tests = []
    for seconds, test in found:
        path, _, rest = test.partition("::")
        tests.append((seconds, path.rsplit("/", 1)[-1] + "::" + rest))
    return sorted(tests, reverse=True)[:SLOWEST]


def unboxed(log: Path) -> list[str]:
    """A scenario log's lines without colours and Molecule's box, a failure's wrapped lines joined again.

    Molecule cuts a long line at the terminal's width and indents the rest
    by two more spaces than the box's own.
    """
    lines: list[str] = []
    for raw in ANSI.sub("", log.read_text(errors="replace")).splitlines():
        boxed = BOX.match(raw)
        body = raw[boxed.end() :] if boxed else raw
        failure = lines and (FAILED_TEST.match(lines[-1]) or FAILED_TASK.match(lines[-1]))
        if boxed and failure and body.startswith("  "):
            lines[-1] += " " + body.strip()
        else:
            lines.append(body.rstrip())
    return lines


def failures(log: Path) -> list[str]:
    """What failed in a scenario: pytest's short summary, else the first failed Ansible tasks.

    The table ends with these, so that the end of a failed run's output,
    which is often all a CI page keeps, says what failed.
    """
    if not log.exists():
        return []
    lines = unboxed(log)
    tests = [line for line in lines if FAILED_TEST.match(line)]
    # A failure Ansible ignores is followed by a line of its own saying so.
    tasks = [
        line
        for line, after in zip(lines, lines[1:] + [""])
        if FAILED_TASK.match(line) and not after.strip().startswith("...ignoring")
    ]
    found = tests or tasks
    return [line[:400] for line in found[:FAILURES_SHOWN]]


def table() -> str:
    lines = ["make test: where the time went (seconds)", ""]
    steps_tsv = RECORDS / "steps.tsv"
    if steps_tsv.exists():
        lines.append(f"{'step':<24}{'s':>7}  result")
        for row in steps_tsv.read_text().splitlines():
            name, seconds, rc = row.split("\t")
            lines.append(f"{name:<24}{seconds:>7}  {'ok' if rc == '0' else 'FAILED (' + rc + ')'}")
        started = RECORDS / "started"
        if started.exists():
            wall = time.time() - int(started.read_text())
            lines.append(
                f"{'wall time':<24}{wall:>7.0f}  (molecule runs beside lint, dist, test-repo, audit-deps, test-app)"
            )
        lines.append("")
    for path in sorted(RECORDS.glob("*.steps")):
        scenario = path.stem
        steps = scenario_steps(path)
        if not steps:
            continue
        wall = sum(seconds for _, seconds in steps)
        parts = "  ".join(f"{name} {seconds:.0f}" for name, seconds in steps if seconds >= 0.5)
        lines.append(f"scenario {scenario}: {wall:.0f} s  ({parts})")
        for seconds, test in slowest_tests(LOGS / f"{scenario}.log"):
            lines.append(f"    {seconds:8.1f}  {test}")
    for path in sorted(RECORDS.glob("*.steps")):
        if (LOGS / f"{path.stem}.failed").exists():
            lines.append(f"scenario {path.stem} FAILED:")
            lines.extend(
                f"    {line}" for line in failures(LOGS / f"{path.stem}.log") or ["(no failed test or task in its log)"]
            )
    return "\n".join(lines) + "\n"


def progress() -> str:
    """Which step each unfinished scenario is in: a run cut off by a time
    limit still shows where its time went."""
    now = time.time()
    running = []
    for path in sorted(RECORDS.glob("*.steps")):
        marks = path.read_text().splitlines()
        if not marks or marks[-1].startswith("end\t"):
            continue
        step, at = marks[-1].split("\t")
        # The file was last written at its last mark, `at` seconds into the scenario.
        since = now - path.stat().st_mtime
        running.append(f"{path.stem} {step} since {since:.0f}s (scenario {since + float(at):.0f}s)")
    return "molecule: running: " + ("; ".join(running) if running else "no scenario")


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[1] == "run" and argv[3] == "--":
        return run(argv[2], argv[4:])
    if len(argv) == 3 and argv[1] == "stamp":
        return stamp(argv[2])
    if len(argv) == 2 and argv[1] == "progress":
        print(progress(), flush=True)
        return 0
    if len(argv) == 2 and argv[1] == "table":
        text = table()
        TABLE.parent.mkdir(parents=True, exist_ok=True)
        TABLE.write_text(text)
        sys.stdout.write(text)
        print(f"(also in {TABLE.relative_to(ROOT)})")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
