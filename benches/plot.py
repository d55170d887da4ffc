#!/usr/bin/env python3
"""Draws benches/results/read.svg, the hot and cold read throughput of every
reader, from benches/results/read.csv (the figures of BENCHMARKS.md).

    python3 benches/plot.py

Standard library only: the SVG is written by hand, one horizontal bar per
reader and one panel per workload, mapview's readers in a colour of their own.
"""

import csv
import html
import os
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "results", "read.csv")
TARGET = os.path.join(HERE, "results", "read.svg")

TITLES = {
    "hot": "Hot 1 GiB file (page cache warm)",
    "cold": "Cold 1 GiB file (evicted first)",
}
WIDTH = 760
LABEL_W = 270
BAR_H = 22
GAP = 6
PANEL_PAD = 46
MAPVIEW = "#d9622b"
OTHER = "#7a8ca3"


def load(path):
    """Rows of the CSV grouped by workload, in file order."""
    with open(path, newline="") as f:
        rows = [line for line in f if not line.startswith("#")]
    panels = OrderedDict()
    for row in csv.DictReader(rows):
        panels.setdefault(row["workload"], []).append(
            (row["reader"], float(row["value"]), row["unit"])
        )
    return panels


def panel(svg, top, title, bars):
    """Appends one panel's title, bars and values; returns its height."""
    svg.append(
        f'<text x="10" y="{top + 20}" font-size="15" font-weight="bold">'
        f"{html.escape(title)} ({html.escape(bars[0][2])})</text>"
    )
    most = max(value for _, value, _ in bars)
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


def main():
    panels = load(SOURCE)
    body = []
    top = 10
    for workload, bars in panels.items():
        top += panel(body, top, TITLES.get(workload, workload), bars)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{top}" '
        f'viewBox="0 0 {WIDTH} {top}" font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{top}" fill="white"/>',
        *body,
        "</svg>",
    ]
    with open(TARGET, "w") as f:
        f.write("\n".join(svg) + "\n")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
