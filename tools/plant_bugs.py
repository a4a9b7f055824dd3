"""Planted-bug campaign: does the test suite notice a plausible one-line bug? (issue 9)

For each bug of `tools/bugs.py` (a file, the exact original text, its mutation, what it breaks and
the test files most likely to catch it), this script copies the repository's working tree to a
scratch folder, applies the mutation there, and runs pytest with `-x`: first the likely test files,
then, if they all pass, the whole suite. The bug is CAUGHT (with the first failing test) or
SURVIVED. The repository itself is never modified, and each scratch copy is removed afterwards.

Not part of the test suite (it runs the suite once per bug: an hour or more on 2 cores).

    python3 tools/plant_bugs.py                      # every bug, 2 at a time
    python3 tools/plant_bugs.py --only E1,E3 --jobs 1
    python3 tools/plant_bugs.py --check              # only check that every original text is still there
    python3 tools/plant_bugs.py --json out.json --markdown out.md
    python3 tools/plant_bugs.py --bugs tools/audit_bugs.py     # an outside review's bugs, same format
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bugs import BUGS, Bug

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL_SKIPPED = {".git", "models", "images", "datasets", "outputs"}  # run outputs, not code (suite/datasets stays)
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


@dataclass
class Outcome:
    bug: str
    file: str
    description: str
    status: str  # CAUGHT, SURVIVED, STALE (original text not found) or BROKEN (the copy failed to apply)
    caught_by: str = ""
    stage: str = ""  # "likely" or "full"
    seconds: float = 0.0


def _ignore(root: Path):
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".pyc")}
        if Path(folder).resolve() == root:
            skipped |= {n for n in names if n in TOP_LEVEL_SKIPPED}
        return skipped

    return ignore


def apply(bug: Bug, tree: Path) -> str | None:
    """Apply every replacement of `bug` in `tree`; None on success, else why it cannot be applied."""
    path = tree / bug.file
    if not path.is_file():
        return f"{bug.file} does not exist"
    for replacement in bug.replacements:
        text = path.read_text()
        count = text.count(replacement.original)
        if count < replacement.occurrence:
            return f"original text found {count} times in {bug.file}, occurrence {replacement.occurrence} wanted"
        start = -1
        for _ in range(replacement.occurrence):
            start = text.index(replacement.original, start + 1)
        path.write_text(text[:start] + replacement.mutated + text[start + len(replacement.original):])
    return None


def check(bug: Bug, tree: Path = REPO) -> str | None:
    """Whether the bug still applies to `tree` (without writing anything); None if it does, else why not."""
    path = tree / bug.file
    if not path.is_file():
        return f"{bug.file} does not exist"
    text = path.read_text()
    for replacement in bug.replacements:
        count = text.count(replacement.original)
        if count < replacement.occurrence:
            return f"original text found {count} times, occurrence {replacement.occurrence} wanted"
        if replacement.original == replacement.mutated:
            return "the mutation changes nothing"
    return None


def pytest(tree: Path, targets: list[str], timeout: float) -> tuple[bool, str]:
    """(passed, first failing test) of `pytest -x` on `targets` in `tree`."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               f"--basetemp={tree / '.pytest-tmp'}", *targets]
    try:
        result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"TIMEOUT after {timeout:.0f} s"
    if result.returncode == 0:
        return True, ""
    found = FAILED.findall(result.stdout)
    if found:
        return False, found[0]
    return False, f"pytest exit {result.returncode}: {(result.stdout + result.stderr).strip().splitlines()[-1:]}"


def plant(bug: Bug, source: Path, timeout: float) -> Outcome:
    started = time.perf_counter()
    outcome = Outcome(bug.name, bug.file, bug.description, "SURVIVED")
    scratch = Path(tempfile.mkdtemp(prefix=f"plant_{bug.name}_"))
    tree = scratch / "repo"
    try:
        shutil.copytree(source, tree, ignore=_ignore(source.resolve()))
        problem = apply(bug, tree)
        if problem:
            outcome.status, outcome.caught_by = "STALE", problem
            return outcome
        stages = [("likely", list(bug.likely))] if bug.likely else []
        stages.append(("full", []))
        for stage, targets in stages:
            passed, failing = pytest(tree, targets, timeout)
            if not passed:
                outcome.status, outcome.caught_by, outcome.stage = "CAUGHT", failing, stage
                break
        return outcome
    finally:
        outcome.seconds = round(time.perf_counter() - started, 1)
        shutil.rmtree(scratch, ignore_errors=True)


def markdown(outcomes: list[Outcome]) -> str:
    lines = ["| bug | file | what it breaks | result | first failing test |", "|---|---|---|---|---|"]
    for o in outcomes:
        where = o.caught_by.replace("|", "\\|")
        lines.append(f"| {o.bug} | {o.file} | {o.description} | {o.status} | {where} |")
    caught = sum(o.status == "CAUGHT" for o in outcomes)
    lines.append("")
    lines.append(f"{caught} of {len(outcomes)} caught.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated bug names (default: all)")
    parser.add_argument("--bugs", type=Path, help="another file of bugs in tools/bugs.py's format (an outside "
                                                  "review's); default: tools/bugs.py")
    parser.add_argument("--jobs", type=int, default=2, help="bugs tried at once (one pytest process each)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest call")
    parser.add_argument("--source", type=Path, default=REPO, help="tree to copy (default: this working tree)")
    parser.add_argument("--check", action="store_true", help="only check that every bug still applies")
    parser.add_argument("--json", type=Path, help="write the outcomes as JSON")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown")
    args = parser.parse_args()
    catalogue = BUGS
    if args.bugs:
        import importlib.util

        spec = importlib.util.spec_from_file_location("outside_bugs", args.bugs)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # a file that defines dataclasses (tools/bugs.py itself) needs it there
        spec.loader.exec_module(module)
        catalogue = module.BUGS
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - {b.name for b in catalogue})
    if unknown:
        parser.error(f"unknown bugs: {', '.join(unknown)}")
    bugs = [b for b in catalogue if not names or b.name in names]
    if args.check:
        problems = [(b.name, check(b, args.source)) for b in bugs]
        for name, problem in problems:
            print(f"{name}: {f'STALE ({problem})' if problem else 'ok'}")
        stale = [name for name, problem in problems if problem]
        print(f"{len(stale)} of {len(problems)} stale" + (f": {', '.join(stale)}" if stale else ""))
        return 1 if stale else 0
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for outcome in pool.map(lambda b: plant(b, args.source, args.timeout), bugs):
            print(f"{outcome.bug:4s} {outcome.status:8s} {outcome.seconds:7.1f}s  {outcome.caught_by}", flush=True)
            outcomes.append(outcome)
    table = markdown(outcomes)
    print(table)
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
