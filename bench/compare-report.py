"""bench/compare's report: the results table into docs/benchmarks.md and an SVG chart.

Usage: python3 bench/compare-report.py OUT_DIR MACHINE BENCHMARKS_MD CHART_SVG (standard library only).
"""
import json
import pathlib
import sys

out, machine, md_path, svg_path = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
servers = ["herald", "nchan", "node"]
labels = {"herald": "herald (embedded log, durable)", "nchan": "nchan (nginx, 2 workers, memory)",
          "node": "Node tutorial hub"}
fanouts = [("max_1k", "1,000 subs, max rate"), ("max_10k", "10,000 subs, max rate"),
           ("rate100_1k", "1,000 subs x 100 ev/s")]


def load(name, run):
    try:
        return json.loads((out / f"{name}.{run}.json").read_text())
    except (OSError, ValueError):
        return None


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float) and v < 100:
        return f"{v:.2f}{unit}" if v < 10 else f"{v:.1f}{unit}"
    return f"{int(round(v)):,}{unit}"


rows = ["| server | load | result |", "|---|---|---|"]
chart = {}
for s in servers:
    d = load(s, "idle_10k")
    if d:
        per = d.get("server_bytes_per_conn")
        rows.append(f"| {labels[s]} | 10,000 idle | {d.get('held', 0):,} held of {d.get('opened', 0):,} opened; "
                    f"**{fmt(per / 1024 if per is not None else None, ' KiB')} per connection** |")
    else:
        rows.append(f"| {labels[s]} | 10,000 idle | failed (no report) |")
    for run, title in fanouts:
        d = load(s, run)
        if not d:
            rows.append(f"| {labels[s]} | {title} | failed (no report) |")
            continue
        lat = d.get("latency_ms") or {}
        chart[(s, run)] = (d.get("deliveries_per_sec") or 0, lat.get("p99"))
        rows.append(
            f"| {labels[s]} | {title} | **{fmt(d.get('deliveries_per_sec'))} deliveries/s**, "
            f"{fmt(d.get('published'))} published, {fmt(d.get('loss'))} lost, {fmt(d.get('duplicates'))} dup; "
            f"latency p50 {fmt(lat.get('p50'), ' ms')}, **p99 {fmt(lat.get('p99'), ' ms')}**; "
            f"server CPU {fmt(d.get('server_cpu_secs'), ' s')}, harness {fmt(d.get('harness_cpu_secs'), ' s')}"
            + (f"; {d['late_publishes']} late publishes" if d.get("late_publishes") else "") + " |")


# Issue 8's targets, judged from the same reports: herald against nchan, side by side in this run.
def metric(name, run, f):
    d = load(name, run)
    try:
        return f(d) if d else None
    except (KeyError, TypeError):
        return None


def per_conn(d):
    return d["server_bytes_per_conn"] / 1024


def dps(d):
    return d["deliveries_per_sec"]


def p99(d):
    return d["latency_ms"]["p99"]


targets = [
    ("memory per idle connection, 10,000 held", "idle_10k", per_conn, " KiB", "at most 0.5x", lambda r: r <= 0.5),
    ("deliveries/s, 1,000 subs, max rate", "max_1k", dps, "", "at least 1.5x", lambda r: r >= 1.5),
    ("deliveries/s, 10,000 subs, max rate", "max_10k", dps, "", "at least 1.5x", lambda r: r >= 1.5),
    ("p99 latency, 10,000 subs, max rate", "max_10k", p99, " ms", "at most 0.5x", lambda r: r <= 0.5),
    ("p99 latency, 1,000 subs x 100 ev/s", "rate100_1k", p99, " ms", "at most 0.5x", lambda r: r <= 0.5),
]
target_rows = ["| target | herald | nchan | herald / nchan | wanted | met |", "|---|---|---|---|---|---|"]
for title, run, f, unit, wanted, ok in targets:
    h, n = metric("herald", run, f), metric("nchan", run, f)
    ratio = h / n if h is not None and n else None
    met = "-" if ratio is None else ("**yes**" if ok(ratio) else "**no**")
    target_rows.append(f"| {title} | {fmt(h, unit)} | {fmt(n, unit)} | "
                       f"{'-' if ratio is None else f'{ratio:.2f}x'} | {wanted} | {met} |")
lossless = [metric("herald", run, lambda d: d["loss"] == 0 and d["duplicates"] == 0 and d["published"] > 0)
            for run, _ in fanouts]
target_rows.append("| herald: every fan-out row with 0 lost, 0 duplicated | "
                   + " / ".join("-" if x is None else ("yes" if x else "no") for x in lossless)
                   + " | | | all | " + ("**yes**" if all(lossless) else "**no**") + " |")

commands = (out / "commands.txt").read_text().strip() if (out / "commands.txt").exists() else ""
section = "\n".join([
    "<!-- compare:begin (written by bench/compare; edits here are overwritten) -->",
    "",
    f"Machine: {machine}. Server, harness and any other load share these cores.",
    "",
    *rows,
    "",
    "Issue 8's targets, computed from the rows above by bench/compare-report.py:",
    "",
    *target_rows,
    "",
    f"![deliveries per second and p99 latency per server]({pathlib.Path(svg_path).name})",
    "",
    "<details><summary>commands</summary>",
    "",
    "```",
    commands,
    "```",
    "</details>",
    "",
    "<!-- compare:end -->",
])
md = pathlib.Path(md_path)
text = md.read_text()
begin, end = "<!-- compare:begin", "<!-- compare:end -->"
if begin in text and end in text:
    text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n## herald vs nchan vs a Node hub (issue 8)\n\n```sh\nbench/compare\n```\n\n" + section + "\n"
md.write_text(text)

# The chart: two panels (deliveries/s, p99 ms), one group per load, one bar per server.
colors = {"herald": "#2b7bb9", "nchan": "#d9822b", "node": "#5a9e4b"}
W, H, pad, top = 760, 300, 60, 40
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{2 * H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{2 * H}" fill="white"/>']
for panel, (key, title) in enumerate([(0, "deliveries per second (higher is better)"),
                                      (1, "p99 publish-to-receive latency, ms (lower is better)")]):
    y0 = panel * H
    vals = [chart.get((s, r), (0, None))[key] or 0 for s in servers for r, _ in fanouts]
    vmax = max(vals + [1e-9])
    svg.append(f'<text x="{pad}" y="{y0 + 22}" font-size="14" font-weight="bold">{title}</text>')
    base = y0 + H - 40
    span = H - 40 - top
    svg.append(f'<line x1="{pad}" y1="{base}" x2="{W - 20}" y2="{base}" stroke="#333"/>')
    gw = (W - pad - 20) / len(fanouts)
    bw = gw / (len(servers) + 1)
    for gi, (run, rtitle) in enumerate(fanouts):
        gx = pad + gi * gw
        svg.append(f'<text x="{gx + gw / 2 - bw / 2:.0f}" y="{base + 18}" text-anchor="middle">{rtitle}</text>')
        for si, s in enumerate(servers):
            v = chart.get((s, run), (0, None))[key]
            h = 0 if not v else span * v / vmax
            x = gx + si * bw
            svg.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bw - 4:.1f}" height="{h:.1f}" fill="{colors[s]}"/>')
            label = "-" if v is None else (f"{v / 1000:.0f}k" if key == 0 else f"{v:.1f}")
            svg.append(f'<text x="{x + (bw - 4) / 2:.1f}" y="{base - h - 4:.1f}" text-anchor="middle" font-size="10">{label}</text>')
for si, s in enumerate(servers):
    svg.append(f'<rect x="{W - 250}" y="{8 + si * 14}" width="10" height="10" fill="{colors[s]}"/>'
               f'<text x="{W - 236}" y="{17 + si * 14}" font-size="11">{labels[s]}</text>')
svg.append("</svg>")
pathlib.Path(svg_path).write_text("\n".join(svg) + "\n")
