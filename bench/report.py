"""Tables and chart from one benchmark run.

    python bench/report.py RESULTS_DIR [--update-doc BENCHMARKS.md]

Reads every `*.json` in RESULTS_DIR holding result rows (a list of objects with
section, case, metric, unit, median, min, max, reps and an optional note) and
`meta.json` (conditions of the run). Prints Markdown tables, with ratios to the
`nginx` and `direct` cases of the same section and group where those exist, writes
RESULTS_DIR/report.md and RESULTS_DIR/chart.png, and with --update-doc replaces the
part of that file between `<!-- bench:results:begin -->` and `<!-- bench:results:end -->`.

Case names: `group/name` groups cases that share baselines (e.g. `return-200/isthmus`
is compared with `return-200/nginx` and `return-200/direct`); a case without `/` is in
its section's single group. The baselines are the cases whose name (after the group)
starts with `nginx` or `direct`.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"
SECTIONS = ["http", "websocket", "events", "plugins"]
NO_RATIO_UNITS = {"count", "%", "ratio", "×", "x", ""}


def no_ratio(unit: str) -> bool:
    """Units that are counts, shares or ratios already."""
    return unit in NO_RATIO_UNITS or unit.startswith("share")


def load(results: Path) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    meta: dict = {}
    for f in sorted(results.glob("*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"report: skipping {f.name}: {e}", file=sys.stderr)
            continue
        if f.name == "meta.json":
            meta = data
        elif isinstance(data, list) and all(isinstance(r, dict) and "section" in r for r in data):
            rows.extend(data)
        elif f.name.startswith("meta-"):
            meta.setdefault("parts", {})[f.stem[5:]] = data
    return rows, meta


def fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    a = abs(x)
    if float(x).is_integer() and a < 1000:
        return str(int(x))
    if a >= 1000:
        return f"{x:,.0f}".replace(",", " ")
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def split(case: str) -> tuple[str, str]:
    return tuple(case.split("/", 1)) if "/" in case else ("", case)  # type: ignore[return-value]


def peers(case: str) -> tuple[str, str]:
    """(group, name) for baselines: `group/name`, else `group, name` (as in "echo, nginx")."""
    if "/" in case:
        return split(case)
    if ", " in case:
        return tuple(case.split(", ", 1))  # type: ignore[return-value]
    return "", case


def baseline(rows: list[dict], row: dict, kind: str) -> dict | None:
    """The `kind` (nginx/direct) row of the same section, group and metric."""
    group, _ = peers(row["case"])
    cands = [r for r in rows if r["section"] == row["section"] and r["metric"] == row["metric"]
             and peers(r["case"])[0] == group and peers(r["case"])[1].lower().startswith(kind)]
    exact = [r for r in cands if peers(r["case"])[1].lower() == kind]
    if len(exact) == 1:
        return exact[0]
    return cands[0] if len(cands) == 1 else None


def ratio(rows: list[dict], row: dict, kind: str) -> str:
    if no_ratio(row["unit"]) or "above" in row["metric"] or "added" in row["metric"]:
        return ""
    b = baseline(rows, row, kind)
    if b is None or b is row or not b["median"] or math.isnan(b["median"]) or math.isnan(row["median"]):
        return ""
    return f"{row['median'] / b['median']:.2f}×"


def tables(rows: list[dict]) -> str:
    out = []
    sections = [s for s in SECTIONS if any(r["section"] == s for r in rows)]
    sections += sorted({r["section"] for r in rows} - set(sections))
    for section in sections:
        srows = [r for r in rows if r["section"] == section]
        groups = list(dict.fromkeys(split(r["case"])[0] for r in srows))
        for group in groups:
            grows = [r for r in srows if split(r["case"])[0] == group]
            has_ratio = any(baseline(rows, r, k) for r in grows for k in ("nginx", "direct"))
            out.append(f"#### {section}{' — ' + group if group else ''}\n")
            head = "| metric | case | median | min – max | reps |" + (" × nginx | × direct |" if has_ratio else "")
            out.append(head)
            out.append("|" + "---|" * (head.count("|") - 1))
            metrics = list(dict.fromkeys(r["metric"] for r in grows))
            for metric in metrics:
                for r in [r for r in grows if r["metric"] == metric]:
                    unit = f" {r['unit']}" if r["unit"] and r["unit"] != "count" else ""
                    spread = f"{fmt(r['min'])} – {fmt(r['max'])}" if r["reps"] > 1 else ""
                    name = split(r["case"])[1]
                    line = f"| {metric} | {name} | {fmt(r['median'])}{unit} | {spread} | {r['reps']} |"
                    if has_ratio:
                        line += f" {ratio(rows, r, 'nginx')} | {ratio(rows, r, 'direct')} |"
                    out.append(line)
            notes = list(dict.fromkeys(f"{r['metric']}: {r['note']}" for r in grows if r.get("note")))
            if notes:
                out.append("")
                out.extend(f"- {n}" for n in notes)
            out.append("")
    return "\n".join(out)


def find(rows, section, case_re, metric_re=None, unit=None) -> dict | None:
    for r in rows:
        if r["section"] != section or not re.search(case_re, r["case"], re.I):
            continue
        if metric_re and not re.search(metric_re, r["metric"], re.I):
            continue
        if unit and r["unit"] != unit:
            continue
        return r
    return None


def targets(rows: list[dict]) -> str:
    """The project's targets, judged on this run's medians."""
    lines = ["| target | measured | verdict |", "|---|---|---|"]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    isth = find(rows, "http", r"^return-200/isthmus$", r"^req/s$")
    ngx = find(rows, "http", r"^return-200/nginx$", r"^req/s$")
    if isth and ngx:
        x = isth["median"] / ngx["median"]
        lines.append(f"| ≥ 1.3× nginx's req/s with the plugin in the path | {x:.2f}× (ratio of medians; {fmt(isth['median'])} vs {fmt(ngx['median'])} req/s) | {verdict(x >= 1.3)} |")
    else:
        lines.append("| ≥ 1.3× nginx's req/s with the plugin in the path | not measured in this run | – |")
    above = find(rows, "http", r"^return-200/isthmus$", r"^cpu/req above direct$")
    if above:
        lines.append(f"| ≤ 15 µs server CPU per request above direct | {fmt(above['median'])} µs (spread {fmt(above['min'])} – {fmt(above['max'])}) | {verdict(above['median'] <= 15)} |")
    else:
        lines.append("| ≤ 15 µs server CPU per request above direct | not measured in this run | – |")

    # WebSocket: the event bridge's msgs/s against nginx's plain WebSocket proxying.
    ws_unit = [r for r in rows if r["section"] == "websocket" and "/s" in r["unit"]]
    bridge = next((r for r in ws_unit if re.search(r"bridge", r["case"], re.I)), None)
    plain = bridge and baseline(rows, bridge, "nginx")
    if bridge and plain:
        x = bridge["median"] / plain["median"]
        lines.append(f"| WebSocket event bridge ≥ 1.0× nginx's plain WebSocket msgs/s | {x:.2f}× (ratio of medians; {bridge['case']} vs {plain['case']}, {bridge['metric']}) | {verdict(x >= 1.0)} |")
    else:
        lines.append("| WebSocket event bridge ≥ 1.0× nginx's plain WebSocket msgs/s | no matching websocket rows in this run | – |")

    # Per-event cost: isthmus's bridge against reflex-django's.
    ev = [r for r in rows if r["section"] == "events" and r["unit"] in ("µs", "ms", "ns")]
    # the cost the bridge adds (a "cost" or "above direct" metric) when there is one
    ev = sorted(ev, key=lambda r: 0 if re.search(r"cost|above", r["metric"], re.I) else 1)
    mine = next((r for r in ev if re.search(r"isthmus.*bridge", r["case"], re.I)), None)
    theirs = next((r for r in ev if mine and r["metric"] == mine["metric"] and r["unit"] == mine["unit"]
                   and re.search(r"reflex-django", r["case"], re.I)), None)
    if mine and theirs and mine["median"] > 0:
        x = theirs["median"] / mine["median"]
        lines.append(f"| per-event cost ≥ 50× lower than reflex-django's bridge | {x:.0f}× lower (ratio of medians; {fmt(mine['median'])} vs {fmt(theirs['median'])} {mine['unit']}, {mine['metric']}) | {verdict(x >= 50)} |")
    else:
        lines.append("| per-event cost ≥ 50× lower than reflex-django's bridge | no matching events rows in this run | – |")

    # The bridge's own target (issue #4): CPU it adds per event against the same client
    # straight to Reflex; the share above a plain gateway hop is shown beside it.
    added = find(rows, "events", r"isthmus bridge", r"^per-event cost \(CPU above direct\)$")
    hop = find(rows, "events", r"isthmus bridge", r"^per-event cost above the plain tunnel$")
    nginx = find(rows, "events", r"nginx", r"^per-event cost \(CPU above direct\)$")
    if added:
        beside = f"; {fmt(hop['median'])} µs of it above a plain isthmus tunnel to the same Reflex" if hop else ""
        if nginx:
            beside += f"; nginx's plain hop alone adds {fmt(nginx['median'])} µs"
        lines.append(f"| event bridge adds < 20 µs CPU per event (default policy) | {fmt(added['median'])} µs above Reflex direct (spread {fmt(added['min'])} – {fmt(added['max'])}){beside} | {verdict(added['median'] < 20)} |")
    else:
        lines.append("| event bridge adds < 20 µs CPU per event (default policy) | not measured in this run | – |")
    return "\n".join(lines) + "\n"


def conditions(meta: dict) -> str:
    if not meta:
        return "_No meta.json in this results folder._\n"
    la = meta.get("loadavg", {})
    lines = [
        f"- run: {meta.get('date', '?')} UTC, {meta.get('mode', '?')} mode, {meta.get('duration_s', '?')} s; "
        f"commit `{meta.get('commit', '?')}`{' (work tree had uncommitted changes in ' + ', '.join(meta['dirty']) + ')' if meta.get('dirty') else ''}",
        f"- command: `{meta.get('command', '?')}`",
        f"- machine: {meta.get('cpu_model', '?')}, {meta.get('cpus', '?')} CPUs, kernel {meta.get('kernel', '?')}; "
        f"load generator on CPU {meta.get('loadgen_cpu', '?')}, every server process on CPU {meta.get('server_cpu', '?')}",
        f"- load average (1/5/15 min) before: {' / '.join(map(str, la.get('before', []))) or '?'}; "
        f"after: {' / '.join(map(str, la.get('after', []))) or '?'}",
    ]
    for part, reps in (meta.get("parts") or {}).items():
        if isinstance(reps, list) and reps and isinstance(reps[0], dict) and "before" in reps[0]:
            ones = [r["before"][0] for r in reps] + [r.get("after", [None])[0] for r in reps if r.get("after")]
            lines.append(f"- {part.replace('-load', '')}: 1-minute load average during its repetitions {min(ones):.2f} – {max(ones):.2f}")
    tools = meta.get("tools") or {}
    if tools:
        lines.append("- tools: " + "; ".join(f"{k} {v}" for k, v in tools.items()))
    for s in meta.get("skipped") or []:
        lines.append(f"- skipped: {s}")
    return "\n".join(lines) + "\n"


CHART = [  # (section, metric or regex, title)
    ("http", "req/s", "HTTP req/s (32 connections)"),
    ("http", "cpu/req", "HTTP server CPU per request (µs)"),
    ("http", "p50 @1conn", "HTTP p50 latency at 1 connection (µs)"),
]


def chart(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib is missing; no chart", file=sys.stderr)
        return False
    panels = []
    for section, metric, title in CHART:
        sel = [r for r in rows if r["section"] == section and r["metric"] == metric and not math.isnan(r["median"])]
        if sel:
            panels.append((title, sel))
    for section in ("websocket", "events"):
        srows = [r for r in rows if r["section"] == section and not math.isnan(r["median"])]
        for metric in list(dict.fromkeys(r["metric"] for r in srows)):
            sel = [r for r in srows if r["metric"] == metric]
            if len(sel) >= 2 and not no_ratio(sel[0]["unit"]) and "load generator" not in metric and len(panels) < 7:
                panels.append((f"{section}: {metric} ({sel[0]['unit']})", sel))
    calls = [r for r in rows if r["section"] == "plugins" and r["metric"] == "time per call"]
    if calls:
        panels.append(("plugin route call (µs, log scale)", calls))
    if not panels:
        return False
    cols = 2
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(13, 3.2 * nrows + 0.6), squeeze=False)
    for ax, (title, sel) in zip(axes.flat, panels):
        labels = [r["case"] for r in sel]
        med = [r["median"] for r in sel]
        lo = [r["median"] - r["min"] for r in sel]
        hi = [r["max"] - r["median"] for r in sel]
        colors = ["#d9822b" if "isthmus" in l else "#4c72b0" if "nginx" in l else "#55a868" if "direct" in l else "#8172b2" for l in labels]
        y = range(len(sel))
        ax.barh(list(y), med, xerr=[lo, hi], color=colors, capsize=3)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        if "log scale" in title:
            ax.set_xscale("log")
        for i, v in enumerate(med):
            ax.text(v, i, " " + fmt(v), va="center", fontsize=7)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("isthmus benchmarks: medians, bars = min–max over repetitions", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--update-doc", type=Path, help="Markdown file whose results block is replaced")
    args = ap.parse_args()
    rows, meta = load(args.results)
    if not rows:
        print(f"report: no result rows in {args.results}", file=sys.stderr)
        return 1
    has_chart = chart(rows, args.results / "chart.png")
    body = ["### Conditions\n", conditions(meta), "### Targets\n", targets(rows), "### Results\n", tables(rows)]
    report = "\n".join(body)
    (args.results / "report.md").write_text(report)
    print(report)
    if args.update_doc:
        doc = args.update_doc.read_text()
        if BEGIN not in doc or END not in doc:
            print(f"report: {args.update_doc} has no {BEGIN} … {END} block; not updated", file=sys.stderr)
            return 1
        rel = args.results.resolve().relative_to(args.update_doc.resolve().parent)
        block = [BEGIN, "", f"_Generated by `bench/report.py` from `{rel}/`._", ""]
        if has_chart:
            block += [f"![benchmark chart]({rel}/chart.png)", ""]
        block += [report, END]
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        args.update_doc.write_text(head + "\n".join(block) + tail)
        print(f"report: updated {args.update_doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
