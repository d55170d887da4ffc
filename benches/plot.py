#!/usr/bin/env python3
"""Draws the charts of BENCHMARKS.md from the figures in benches/results:
read.svg, the hot and cold read throughput of every reader, from read.csv;
serve.svg, the requests per second of every HTTP server on hot and cold
64 KiB ranges and on small files, from serve.csv (written by
`RESULTS_CSV=benches/results/serve.csv bash benches/serve_bench.sh`; the
last row of each server, cache and workload counts), if there is one;
scale.svg, the throughput and longest poll of mapview and tokio::fs
against the number of streams, from scale.csv (written by
`RESULTS_CSV=benches/results/scale.csv cargo run --release -p
mapview-benches --bin scale -- --quick`; the last run counts), if there is
one.

    python3 benches/plot.py

Standard library only: the SVG is written by hand, one horizontal bar per
reader or server and one panel per workload, mapview's in a colour of its
own.
"""

import csv
import html
import os
from collections import OrderedDict

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

READ_TITLES = {
    "hot": "Hot 1 GiB file (page cache warm)",
    "cold": "Cold 1 GiB file (evicted first)",
}
# The panels of serve.svg: (cache, workload) of serve.csv and their titles.
SERVE_PANELS = OrderedDict(
    [
        (("hot", "ranges"), "Random 64 KiB ranges of a hot 1 GiB file, 64 clients"),
        (("cold", "ranges"), "Random 64 KiB ranges of a cold 1 GiB file, 64 clients"),
        (("hot", "small"), "Random GETs of 10,000 hot files of 1-64 KiB, 64 clients"),
    ]
)
WIDTH = 760
LABEL_W = 270
BAR_H = 22
GAP = 6
PANEL_PAD = 46
MAPVIEW = "#d9622b"
OTHER = "#7a8ca3"


def rows(path):
    """The CSV's rows as dicts, its `#` comment lines left out."""
    with open(path, newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def read_panels(path):
    """read.csv's bars grouped by workload, in file order."""
    panels = OrderedDict()
    for row in rows(path):
        title = READ_TITLES.get(row["workload"], row["workload"])
        panels.setdefault(title, []).append(
            (row["reader"], float(row["value"]), row["unit"])
        )
    return panels


def serve_panels(path):
    """serve.csv's req/s as the bars of SERVE_PANELS, servers in file order;
    a later row of a server, cache and workload replaces an earlier one."""
    latest = OrderedDict()
    for row in rows(path):
        key = (row["cache"], row["workload"])
        if key in SERVE_PANELS:
            latest.setdefault(key, OrderedDict())[row["server"]] = float(row["rps"])
    return OrderedDict(
        (title, [(server, rps, "req/s") for server, rps in latest[key].items()])
        for key, title in SERVE_PANELS.items()
        if key in latest
    )


def scale_panels(path):
    """scale.csv's last run: MB/s and the longest poll, a bar per (N,
    reader), N ascending."""
    last = []
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    header, body = lines[0], lines[1:]
    for line in body:
        if line.startswith("#"):
            last = []
        elif line:
            last.append(line)
    runs = list(csv.DictReader([header, *last]))
    runs.sort(key=lambda row: int(row["streams"]))

    def bars(column, unit):
        return [
            (f'{row["streams"]} streams, {row["reader"]}', float(row[column]), unit)
            for row in runs
        ]

    return OrderedDict(
        [
            ("Cold reads by N streams, aggregate", bars("mbps", "MB/s")),
            ("Longest poll of any task (lower is better)", bars("longest_poll_ms", "ms")),
        ]
    )


def panel(svg, top, title, bars):
    """Appends one panel's title, bars and values; returns its height."""
    svg.append(
        f'<text x="10" y="{top + 20}" font-size="15" font-weight="bold">'
        f"{html.escape(title)} ({html.escape(bars[0][2])})</text>"
    )
    most = max(value for _, value, _ in bars) or 1.0
    scale = (WIDTH - LABEL_W - 70) / most
    y = top + 34
    for reader, value, _ in bars:
        colour = MAPVIEW if reader.startswith("mapview") else OTHER
        width = max(1.0, value * scale)
        svg.append(
            f'<text x="{LABEL_W - 8}" y="{y + BAR_H - 6}" font-size="12" '
            f'text-anchor="end">{html.escape(reader)}</text>'
        )
        svg.append(
            f'<rect x="{LABEL_W}" y="{y}" width="{width:.1f}" height="{BAR_H}" '
            f'fill="{colour}"/>'
        )
        svg.append(
            f'<text x="{LABEL_W + width + 6:.1f}" y="{y + BAR_H - 6}" '
            f'font-size="12">{value:g}</text>'
        )
        y += BAR_H + GAP
    return y - top + PANEL_PAD - 30


def draw(panels, target):
    """Writes `panels` (bars by title) to the SVG file `target`."""
    body = []
    top = 10
    for title, bars in panels.items():
        top += panel(body, top, title, bars)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{top}" '
        f'viewBox="0 0 {WIDTH} {top}" font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{top}" fill="white"/>',
        *body,
        "</svg>",
    ]
    with open(target, "w") as f:
        f.write("\n".join(svg) + "\n")
    print(f"wrote {target}")


def main():
    read = os.path.join(RESULTS, "read.csv")
    draw(read_panels(read), os.path.join(RESULTS, "read.svg"))
    serve = os.path.join(RESULTS, "serve.csv")
    if os.path.exists(serve):
        draw(serve_panels(serve), os.path.join(RESULTS, "serve.svg"))
    else:
        print(f"no {serve}: serve.svg not drawn")
    scale = os.path.join(RESULTS, "scale.csv")
    if os.path.exists(scale):
        draw(scale_panels(scale), os.path.join(RESULTS, "scale.svg"))
    else:
        print(f"no {scale}: scale.svg not drawn")


if __name__ == "__main__":
    main()
