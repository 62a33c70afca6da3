"""nnc's fuzz campaign (docs/fuzzing.md): seeded mutations of models, external
data, blobs, text IR, sample files, options and output folders, run in forked
workers and sorted into outcome classes.

    python benchmarks/fuzz.py --cases 10000 [--seed 0] [--jobs 2]
        prints a progress line, then the mutator family x outcome table and the
        first failing case ids per class with their one-line reasons
    python benchmarks/fuzz.py --seed 0 --case 123 --show
        reruns case 123 alone: prints its argv, mutation and output, and keeps
        its sandbox folder
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzing.execute import read_text  # noqa: E402
from fuzzing.runner import JOBS, TIMEOUT, case_folder, run_campaign, run_one  # noqa: E402
from fuzzing.tables import failure_list, failures, outcome_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000, help="number of cases (0..N-1)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed")
    parser.add_argument("--jobs", type=int, default=JOBS, help="worker processes")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per case")
    parser.add_argument("--determinism", type=float, default=0.05,
                        help="share of cases rerun to check that accepted outputs are byte-identical")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary folder)")
    parser.add_argument("--case", type=int, help="run only this case index (with --show: print it all)")
    parser.add_argument("--show", action="store_true", help="print the case's argv, mutation and output")
    parser.add_argument("--json", type=Path, help="write every result to this JSON file")
    parser.add_argument("--first", type=int, default=5, help="failing case ids listed per class")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nnc-fuzz-"))
    if args.case is not None:
        sys.exit(show_case(args.seed, args.case, work, args.timeout, args.show))
    results = campaign(args, work)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    sys.exit(1 if failures(results) else 0)


def campaign(args, work: Path) -> list[dict]:
    start = time.perf_counter()
    failed = 0
    tty = sys.stderr.isatty()
    carriage = "\r" if tty else ""

    def progress(result: dict, done: int, total: int) -> None:
        nonlocal failed
        failed += result["class"] not in ("rejected", "accepted")
        if tty or done == total or done % max(1, total // 20) == 0:
            rate = done / (time.perf_counter() - start)
            print(f"{carriage}fuzz: {done}/{total} cases, {rate:.1f} cases/s, {failed} failing",
                  end="" if tty and done < total else "\n", file=sys.stderr, flush=True)

    results = run_campaign(args.cases, args.seed, args.jobs, args.timeout, args.determinism, work, progress)
    seconds = time.perf_counter() - start
    checked = sum(r["determinism_checked"] for r in results)
    print(f"nnc fuzz campaign: seed {args.seed}, {len(results)} cases in {seconds:.0f} s "
          f"({len(results) / seconds:.1f} cases/s, {args.jobs} workers, corpus build included); "
          f"{checked} cases checked for determinism\n")
    print(outcome_table(results))
    print("\n" + failure_list(results, args.first))
    return results


def show_case(seed: int, index: int, work: Path, timeout: float, show: bool) -> int:
    result = run_one(seed, index, work, timeout)
    folder = case_folder(work / "cases", seed, index)
    print(f"case {result['id']} ({result['family']}: {', '.join(result['mutators'])}): {result['class']}"
          + (f" - {result['reason']}" if result["reason"] else ""))
    if show:
        print(f"  cd {folder / 'home' / 'work'} && nnc {shlex.join(result['argv'])}")
        print(f"  exit {result['exit']}, {result['seconds']:.2f} s" + ("; must be refused" if result["must_reject"]
                                                                      else ""))
        for note in result["notes"]:
            print(f"  mutation: {note}")
        for stream in ("stdout", "stderr"):
            text = read_text(folder / stream)
            print(f"--- {stream} ({len(text)} chars)\n{text}" if text else f"--- {stream}: empty")
        print(f"sandbox kept in {folder}")
    return 0 if result["class"] in ("rejected", "accepted") else 1


if __name__ == "__main__":
    main()
