"""An SVG plot of a find-max search: each step's p99 against its offered rate, numbered in
order, green when it passed and red when it failed, with the bound as a line; plain SVG text,
like :mod:`~.drill_plot`, so the load test needs no plotting library."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH = 640
HEIGHT = 300
MARGIN = 50


def search_svg(find_max: dict[str, Any], title: str) -> str:
    """The plot of the ``find_max`` section of a load test report."""
    steps = find_max["steps"]
    bound = float(find_max["bound_ms"])
    right = max([1.0, *(float(s["offered"]) for s in steps)]) * 1.1
    top = max([bound * 1.5, *(float(s["p99_ms"]) for s in steps)]) * 1.05
    plot_w = WIDTH - 2 * MARGIN
    plot_h = HEIGHT - 2 * MARGIN

    def x(rate: float) -> float:
        return MARGIN + rate / right * plot_w

    def y(ms: float) -> float:
        return HEIGHT - MARGIN - ms / top * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{y(bound):.1f}" y2="{y(bound):.1f}"'
        f' stroke="#888" stroke-dasharray="4 3"/>',
        f'<text x="{WIDTH - MARGIN}" y="{y(bound) - 4:.1f}" text-anchor="end" fill="#888">'
        f"p99 bound {bound:g} ms</text>",
    ]
    for number, step in enumerate(steps, start=1):
        colour = "#27ae60" if step["passed"] else "#c0392b"
        cx, cy = x(float(step["offered"])), y(float(step["p99_ms"]))
        marker = "generator-bound" if step.get("generator_bound") else ""
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colour}"'
            f' stroke="{"black" if marker else colour}" class="step {marker}"/>'
            f'<text x="{cx + 7:.1f}" y="{cy + 4:.1f}">{number}</text>'
        )
    parts += [
        f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{HEIGHT - MARGIN}"'
        f' y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<line x1="{MARGIN}" x2="{MARGIN}" y1="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end">{top:.0f}</text>',
        f'<text x="{MARGIN - 4}" y="{HEIGHT - MARGIN}" text-anchor="end">0</text>',
        f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - MARGIN + 14}" text-anchor="end">'
        f"{right:.0f}</text>",
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
        "offered writes/s (x) against p99 write→ack ms (y); steps numbered in order</text>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
