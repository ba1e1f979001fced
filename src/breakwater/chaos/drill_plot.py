"""An SVG plot of acknowledged writes per second through a drill, with the fault and the heal
marked; plain SVG text, so the drill needs no plotting library."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 640
HEIGHT = 240
MARGIN = 40


def acks_svg(per_second: Sequence[int], fault_at: float, heal_at: float, title: str) -> str:
    """A bar per second of ``per_second``; red line at ``fault_at``, green at ``heal_at``."""
    seconds = max(1, len(per_second))
    peak = max([1, *per_second])
    plot_w = WIDTH - 2 * MARGIN
    plot_h = HEIGHT - 2 * MARGIN
    bar_w = plot_w / seconds

    def x(at: float) -> float:
        return MARGIN + at * bar_w

    def y(count: float) -> float:
        return HEIGHT - MARGIN - count / peak * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>',
    ]
    for second, count in enumerate(per_second):
        parts.append(
            f'<rect x="{x(second):.1f}" y="{y(count):.1f}" width="{max(bar_w - 1, 0.5):.1f}"'
            f' height="{HEIGHT - MARGIN - y(count):.1f}" fill="#4a78b5"/>'
        )
    for at, colour, label in ((fault_at, "#c0392b", "fault"), (heal_at, "#27ae60", "heal")):
        parts.append(
            f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{MARGIN}" y2="{HEIGHT - MARGIN}"'
            f' stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x(at) + 3:.1f}" y="{MARGIN + 10}" fill="{colour}">{label}</text>'
        )
    parts += [
        f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{HEIGHT - MARGIN}"'
        f' y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<line x1="{MARGIN}" x2="{MARGIN}" y1="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{MARGIN - 4}" y="{HEIGHT - MARGIN}" text-anchor="end">0</text>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"seconds ({seconds} s); acknowledged writes per second</text>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
