"""Small bar charts drawn on the server as SVG geometry (a template renders the elements): no
chart library, no script, and the numbers are in the page as text too."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 260
ROW = 24
LABEL = 90
VALUE = 36


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    y: int
    width: float
    # A CSS class suffix (a status), so colours follow the status badges.
    tone: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    width: int
    height: int
    label_width: int
    track_width: int

    @property
    def total(self) -> int:
        return sum(bar.value for bar in self.bars)

    @property
    def description(self) -> str:
        parts = ", ".join(f"{bar.label} {bar.value}" for bar in self.bars) or "nothing yet"
        return f"{self.title}: {parts}"


def bar_chart(title: str, counts: list[tuple[str, int]], tones: bool = True) -> Chart:
    track = WIDTH - LABEL - VALUE
    largest = max((value for _, value in counts), default=0) or 1
    bars = [
        Bar(
            label=label,
            value=value,
            y=index * ROW,
            width=round(track * value / largest, 1),
            tone=label if tones else "",
        )
        for index, (label, value) in enumerate(counts)
    ]
    return Chart(title, bars, WIDTH, max(1, len(bars)) * ROW, LABEL, track)
