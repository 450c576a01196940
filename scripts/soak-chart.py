#!/usr/bin/env python3
"""Draws a soak's samples (the CSV of `sluice-bench soak --csv`) as one SVG of stacked panels.

    python3 scripts/soak-chart.py docs/soak-60min.csv docs/soak-60min.svg

Plain SVG written by hand so that the picture needs nothing installed beside Python.
"""
import csv
import sys

# (title, unit, [(column, label, colour)]) — one panel each.
PANELS = [
    ("Server memory", "RSS MB", [("rss_mb", "RSS", "#1f77b4")]),
    (
        "Batch duration (last batch at each sample)",
        "ms",
        [("kafka_batch_ms", "Kafka → windows → Kafka", "#d62728"), ("files_batch_ms", "files → join → PostgreSQL", "#2ca02c")],
    ),
    (
        "CPU (share of one core)",
        "%",
        [("server_cpu_pct", "sluice serve", "#9467bd"), ("broker_cpu_pct", "Kafka test broker", "#8c564b")],
    ),
    ("Open files and threads", "count", [("fds", "fds", "#ff7f0e"), ("threads", "threads", "#17becf")]),
    ("Checkpoint directories", "KB", [("checkpoint_kb", "both queries", "#7f7f7f")]),
]
WIDTH, PANEL_H, LEFT, RIGHT, TOP, GAP = 900, 150, 70, 20, 30, 50


def main(src, dst):
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{src}: no samples")
    for r in rows:
        r["checkpoint_kb"] = float(r["checkpoint_mb"]) * 1000
    xs = [float(r["seconds"]) / 60 for r in rows]
    x_max = max(xs) or 1
    plot_w = WIDTH - LEFT - RIGHT
    height = TOP + len(PANELS) * (PANEL_H + GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    for i, (title, unit, series) in enumerate(PANELS):
        y0 = TOP + i * (PANEL_H + GAP)
        values = [float(r[c]) for c, _, _ in series for r in rows if c in r and r[c] != ""]
        if not values:
            continue
        y_max = max(values) * 1.1 or 1
        out.append(f'<text x="{LEFT}" y="{y0 - 8}" font-weight="bold">{title}</text>')
        out.append(
            f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#999"/>'
        )
        for frac in (0, 0.5, 1):
            y = y0 + PANEL_H * (1 - frac)
            out.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{y_max * frac:.0f}</text>')
        out.append(
            f'<text x="14" y="{y0 + PANEL_H / 2}" transform="rotate(-90 14 {y0 + PANEL_H / 2})" '
            f'text-anchor="middle">{unit}</text>'
        )
        for minute in range(0, int(x_max) + 1, 10):
            x = LEFT + plot_w * minute / x_max
            out.append(f'<text x="{x}" y="{y0 + PANEL_H + 14}" text-anchor="middle">{minute} min</text>')
        for j, (column, label, colour) in enumerate(series):
            points = " ".join(
                f"{LEFT + plot_w * x / x_max:.1f},{y0 + PANEL_H * (1 - float(r[column]) / y_max):.1f}"
                for x, r in zip(xs, rows)
                if r.get(column, "") != ""
            )
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
            out.append(
                f'<text x="{LEFT + plot_w - 8}" y="{y0 + 16 + 14 * j}" text-anchor="end" fill="{colour}">{label}</text>'
            )
    out.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: soak-chart.py SAMPLES.csv CHART.svg")
    main(sys.argv[1], sys.argv[2])
