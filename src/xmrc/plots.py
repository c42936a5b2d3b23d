"""The one way the package draws and saves a figure.

Figures are built on matplotlib.figure.Figure with the Agg canvas, not pyplot: no global backend or
open-figure state is touched, so commands and tests can draw side by side. The PNG is written atomically
(xmrc.io.write_atomic), so an interrupted job never leaves a truncated image that looks finished.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xmrc.io import write_atomic

DPI = 150


def new_figure(**options) -> Figure:
    """A Figure (options as matplotlib.figure.Figure's: figsize, layout, ...) drawn by the Agg canvas."""
    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path, dpi: int = DPI, bbox_inches: str | None = "tight") -> Path:
    """Write `figure` as a PNG at `path` (folders created)."""
    return write_atomic(path, lambda sink: figure.savefig(sink, format="png", dpi=dpi, bbox_inches=bbox_inches))
