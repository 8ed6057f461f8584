"""A fuzzing campaign: every target of host/fuzz for a set time, niced, two at a time.

Called by `tests/fuzz.sh campaign SECONDS`. Each target's corpus grows in
host/fuzz/corpus/<target> (kept out of git) from its seeds; a crash, timeout or
out-of-memory stops libFuzzer, so the target is started again on its grown corpus until
its time is spent (its failing inputs are kept in host/fuzz/artifacts/<target>/). Writes
bench/results/<UTC>-fuzz/summary.md and summary.json, and each run's log beside them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import REPO, log  # noqa: E402

# Two at a time: the machine has two cores, and builds share it.
PARALLEL = 2
# A target that fails at once on every start would otherwise loop until its time is out.
MAX_STARTS = 20
# libFuzzer names a failing input after its kind: crash-…, timeout-…, oom-…, leak-….
FAILURE_KINDS = {"crash": "crashes", "timeout": "timeouts", "oom": "ooms", "leak": "leaks"}


def last_int(pattern: str, text: str) -> int | None:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else None


def one_run(binary: Path, corpus: Path, seeds: Path, artifacts: Path, seconds: int, extra: list[str], log_path: Path) -> dict:
    """One libFuzzer process: its executions, coverage and exit code, from its log."""
    started = time.monotonic()
    with open(log_path, "w") as out:
        code = subprocess.call(
            ["nice", "-n", "19", str(binary), *extra, f"-max_total_time={seconds}", "-print_final_stats=1",
             f"-artifact_prefix={artifacts}/", str(corpus), str(seeds)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    text = log_path.read_text(errors="replace")
    # The final stats when libFuzzer printed them, else its last status line `#N …`.
    execs = last_int(r"stat::number_of_executed_units: (\d+)", text)
    if execs is None:
        execs = last_int(r"(?m)^#(\d+)\s", text) or 0
    return {
        "seconds": time.monotonic() - started,
        "executions": execs,
        "cov": last_int(r"\bcov: (\d+)", text),
        "ft": last_int(r"\bft: (\d+)", text),
        "exit": code,
    }


def campaign(target: str, args, results: Path) -> dict:
    fuzz = Path(args.fuzz_dir)
    corpus, seeds, artifacts = fuzz / "corpus" / target, fuzz / "seeds" / target, fuzz / "artifacts" / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in artifacts.iterdir()}
    deadline = time.monotonic() + args.seconds
    runs = []
    while len(runs) < MAX_STARTS and (left := int(deadline - time.monotonic())) > 0:
        log(f"fuzz {target}: run {len(runs) + 1}, {left} s left")
        runs.append(one_run(Path(args.bin_dir) / target, corpus, seeds, artifacts, left, args.libfuzzer,
                            results / f"{target}-{len(runs) + 1}.log"))
    new = sorted(p.name for p in artifacts.iterdir() if p.name not in before)
    seconds = sum(r["seconds"] for r in runs)
    execs = sum(r["executions"] for r in runs)
    files = [p for p in corpus.iterdir() if p.is_file()]
    row = {
        "target": target,
        "seconds": round(seconds),
        "executions": execs,
        "exec_per_s": round(execs / seconds) if seconds else 0,
        "corpus_files": len(files),
        "corpus_bytes": sum(p.stat().st_size for p in files),
        "cov": runs[-1]["cov"] if runs else None,
        "ft": runs[-1]["ft"] if runs else None,
        "runs": len(runs),
        "artifacts": new,
    }
    for kind, key in FAILURE_KINDS.items():
        row[key] = sum(1 for a in new if a.startswith(kind + "-"))
    log(f"fuzz {target}: done, {execs} runs in {seconds:.0f} s, failing inputs: {new or 'none'}")
    return row


def write_summary(rows: list[dict], results: Path, started: str) -> None:
    (results / "summary.json").write_text(json.dumps({"started": started, "targets": rows}, indent=1) + "\n")
    head = "| target | fuzz time | executions | exec/s | corpus (files, bytes) | cov | ft | crashes | timeouts | OOMs | leaks |"
    lines = [f"Fuzzing campaign started {started}; libFuzzer, `nice -n 19`, {PARALLEL} targets at a time.", "",
             head, "|" + " --- |" * head.count(" | ") + " --- |"]
    for r in rows:
        lines.append(f"| `{r['target']}` | {r['seconds'] / 3600:.2f} h | {r['executions']:,} | {r['exec_per_s']:,} | "
                     f"{r['corpus_files']}, {r['corpus_bytes']:,} | {r['cov']} | {r['ft']} | {r['crashes']} | "
                     f"{r['timeouts']} | {r['ooms']} | {r['leaks']} |")
    total_s, total_x = sum(r["seconds"] for r in rows), sum(r["executions"] for r in rows)
    lines += ["", f"In all: {total_s / 3600:.2f} fuzz hours, {total_x:,} executions."]
    (results / "summary.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, required=True, help="fuzz time of each target")
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--fuzz-dir", required=True)
    ap.add_argument("--targets", required=True, help="comma-separated")
    ap.add_argument("libfuzzer", nargs="*", help="libFuzzer arguments for every run")
    args = ap.parse_args()
    started = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results = REPO / "bench" / "results" / f"{started}-fuzz"
    results.mkdir(parents=True)
    log(f"fuzz campaign: {args.targets}, {args.seconds} s each, results in {results}")
    with ThreadPoolExecutor(PARALLEL) as pool:
        rows = list(pool.map(lambda t: campaign(t, args, results), args.targets.split(",")))
    write_summary(rows, results, started)
    print((results / "summary.md").read_text())


if __name__ == "__main__":
    main()
