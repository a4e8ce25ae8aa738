"""A chart of premiums paid per producer and month, as a self-contained SVG written by hand.

Grouped bars: one group per month, one bar per producer, with a legend and a value axis in
USD. Pure Python, no plotting library; text is escaped, so producer names are safe.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

PALETTE = ("#1b6ca8", "#d99a1e", "#3a8f5c", "#b5483b", "#6d4c9f", "#2a9d8f", "#8c6d31",
           "#c2577a", "#4f6d7a", "#7a9e3b")


def _nice_top(value: int) -> int:
    """A round axis maximum at or above `value`: 1, 2 or 5 times a power of ten."""
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    return next(magnitude * step for step in (1, 2, 5, 10) if magnitude * step >= value)


def premiums_chart(paid: dict[str, dict[str, int]], months: list[str],
                   title: str = "Premiums paid per producer and month (USD)") -> str:
    """`paid[producer name][YYYY-MM]` = cents paid (transfers less reversals)."""
    producers = sorted(paid)
    width, height = max(640, 120 + len(months) * max(60, 18 * len(producers) + 24)), 420
    left, right, top, bottom = 90, 20, 50, 80 + 18 * ((len(producers) + 2) // 3)
    height += 18 * ((len(producers) + 2) // 3)
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max([v for series in paid.values() for v in series.values()] + [0])
    axis_top = _nice_top(max(highest, 100))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<title>{escape(title)}</title>',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2:.0f}" y="24" text-anchor="middle" font-size="15">'
           f'{escape(title)}</text>']
    for tick in range(5):
        value = axis_top * tick // 4
        y = top + plot_h - plot_h * tick / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                   f'{value // 100:,}</text>')
    group_w = plot_w / max(len(months), 1)
    bar_w = max(4.0, min(40.0, (group_w - 16) / max(len(producers), 1)))
    for m, month in enumerate(months):
        x0 = left + m * group_w + (group_w - bar_w * len(producers)) / 2
        for p, producer in enumerate(producers):
            cents = max(paid[producer].get(month, 0), 0)
            h = plot_h * cents / axis_top
            x, y = x0 + p * bar_w, top + plot_h - h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" '
                       f'height="{h:.1f}" fill="{PALETTE[p % len(PALETTE)]}">'
                       f'<title>{escape(producer)} {month}: USD {cents // 100:,}.'
                       f'{cents % 100:02d}</title></rect>')
        out.append(f'<text x="{left + (m + 0.5) * group_w:.1f}" y="{top + plot_h + 18}" '
                   f'text-anchor="middle">{month}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#333"/>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
               f'y2="{top + plot_h}" stroke="#333"/>')
    for p, producer in enumerate(producers):
        x = left + (p % 3) * (plot_w / 3)
        y = top + plot_h + 44 + 18 * (p // 3)
        out.append(f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" '
                   f'fill="{PALETTE[p % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 18:.1f}" y="{y}">{escape(producer[:40])}</text>')
    if not producers:
        out.append(f'<text x="{width / 2:.0f}" y="{top + plot_h / 2:.0f}" '
                   f'text-anchor="middle" fill="#777">No premiums paid in this period</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
