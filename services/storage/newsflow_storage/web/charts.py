"""Small inline SVG charts: no script, no library, readable by a screen reader through their label.

Only numbers reach the SVG's geometry; the label is escaped. Sizes are in viewBox units, so the
charts scale with the page (a phone gets the same chart, narrower).
"""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT = 240, 48


def bars(values: list[int], label: str, css: str = "chart") -> Markup:
    """One bar per value (a minute), the tallest reaching the top; an empty hour is a flat line."""
    top = max(values, default=0) or 1
    step = WIDTH / max(len(values), 1)
    rects = "".join(
        f'<rect x="{i * step:.1f}" y="{HEIGHT - value / top * HEIGHT:.1f}" width="{max(step - 1, 1):.1f}" '
        f'height="{value / top * HEIGHT:.1f}"/>'
        for i, value in enumerate(values)
        if value
    )
    return Markup(
        f'<svg class="{escape(css)}" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<line x1="0" y1="{HEIGHT - 0.5}" x2="{WIDTH}" y2="{HEIGHT - 0.5}"/>{rects}</svg>'
    )


def line(points: list[tuple[float, int]], start: float, seconds: float, label: str) -> Markup:
    """A line of (time, value) samples over ``seconds`` from ``start``; fewer than two samples draw none."""
    top = max((v for _, v in points), default=0) or 1
    coords = " ".join(
        f"{(at - start) / seconds * WIDTH:.1f},{HEIGHT - value / top * (HEIGHT - 2) - 1:.1f}" for at, value in points
    )
    path = f'<polyline points="{coords}"/>' if len(points) > 1 else ""
    return Markup(
        f'<svg class="chart line" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<line x1="0" y1="{HEIGHT - 0.5}" x2="{WIDTH}" y2="{HEIGHT - 0.5}"/>{path}</svg>'
    )


def score_bar(score: float) -> Markup:
    """A topic's score (0..1) as a bar; the number is printed beside it in the page too."""
    width = max(0.0, min(1.0, score)) * 100
    return Markup(
        f'<svg class="score" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false">'
        f'<rect class="track" x="0" y="0" width="100" height="10"/>'
        f'<rect class="fill" x="0" y="0" width="{width:.1f}" height="10"/></svg>'
    )
