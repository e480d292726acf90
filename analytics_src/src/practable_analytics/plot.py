"""Draw task graphs: a PNG with matplotlib (Agg) or an interactive HTML page with pyvis.

Nodes sit at the experiment's drawing positions (the pixel layout the dashboard uses, y pointing
down as in vis-network); an edge's width grows with its weight and it is labelled with the count; a
self-loop (a mode repeated) is drawn as a small loop above its node. With a comparison graph the PNG
has two panels side by side and the HTML page shows the comparison to the right of the student.
matplotlib and pyvis are imported inside the functions (never by the service).
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Sequence, Tuple

import numpy as np

NODE_COLOR = "#97c2fc"
EDGE_COLOR = "#2b6cb0"
HTML_OFFSET_X = 650.0


@dataclass(frozen=True)
class Panel:
    """One graph to draw."""

    title: str
    nodes: Tuple[str, ...]
    positions: np.ndarray  # (n, 2) pixels, y down
    matrix: np.ndarray  # (n, n) row = from


def _widths(matrix: np.ndarray, lo: float, hi: float) -> np.ndarray:
    top = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
    return lo + (hi - lo) * matrix / top


def _label(weight: float) -> str:
    return str(int(weight)) if float(weight).is_integer() else f"{weight:.2f}"


def _draw_panel(ax: Any, panel: Panel) -> None:
    from matplotlib.patches import FancyArrowPatch  # noqa: PLC0415 (tools extra)

    pos = panel.positions.astype(float).copy()
    pos[:, 1] = -pos[:, 1]  # y down (vis-network) -> y up (matplotlib)
    widths = _widths(panel.matrix, 1.0, 7.0)
    radius = 34.0
    n = len(panel.nodes)
    for i in range(n):
        for j in range(n):
            w = float(panel.matrix[i, j])
            if w <= 0:
                continue
            if i == j:
                x, y = pos[i]
                loop = FancyArrowPatch(
                    (x - 16, y + 20),
                    (x + 16, y + 20),
                    connectionstyle="arc3,rad=-2.4",
                    arrowstyle="-|>",
                    mutation_scale=12,
                    lw=widths[i, j],
                    color=EDGE_COLOR,
                    alpha=0.8,
                    zorder=1,
                )
                ax.add_patch(loop)
                ax.text(
                    x,
                    y + 74,
                    _label(w),
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
                )
                continue
            start, end = pos[i], pos[j]
            arrow = FancyArrowPatch(
                tuple(start),
                tuple(end),
                connectionstyle="arc3,rad=0.12",
                arrowstyle="-|>",
                mutation_scale=14,
                lw=widths[i, j],
                color=EDGE_COLOR,
                alpha=0.75,
                shrinkA=radius * 0.75,
                shrinkB=radius * 0.75,
                zorder=1,
            )
            ax.add_patch(arrow)
            # label near the middle of the curved edge, shifted to its side (edge a->b and b->a differ)
            mid = (start + end) / 2
            d = end - start
            length = math.hypot(d[0], d[1]) or 1.0
            normal = np.array([d[1], -d[0]]) / length
            lx, ly = mid + normal * 0.06 * length
            ax.text(
                lx,
                ly,
                _label(w),
                ha="center",
                va="center",
                fontsize=9,
                zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            )
    ax.scatter(pos[:, 0], pos[:, 1], s=900, c=NODE_COLOR, edgecolors="#2b7ce9", linewidths=1.5, zorder=2)
    for (x, y), name in zip(pos, panel.nodes):
        ax.text(x, y - radius - 10, name, ha="center", va="top", fontsize=10, zorder=3)
    pad = 90.0
    ax.set_xlim(pos[:, 0].min() - pad - 40, pos[:, 0].max() + pad + 40)
    ax.set_ylim(pos[:, 1].min() - pad, pos[:, 1].max() + pad + 30)
    ax.set_aspect("equal")
    ax.axis("off")
    total = int(panel.matrix.sum()) if float(panel.matrix.sum()).is_integer() else panel.matrix.sum()
    ax.set_title(f"{panel.title}\n{total} transitions", fontsize=11)


def draw_png(path: Path, panels: Sequence[Panel], dpi: int = 110) -> None:
    """Write the panels side by side to a PNG file."""
    import matplotlib  # noqa: PLC0415 (tools extra, never imported by the service)

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(6.4 * len(panels), 6.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel)
    fig.tight_layout()
    fig.savefig(str(path), format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.3)


def draw_html(path: Path, panels: Sequence[Panel]) -> None:
    """Write an interactive page (vis-network through pyvis, inlined so it works offline)."""
    from pyvis.network import Network  # noqa: PLC0415 (tools extra)

    net = Network(height="700px", width="100%", directed=True, cdn_resources="in_line")
    net.toggle_physics(False)
    for k, panel in enumerate(panels):
        prefix = "" if k == 0 else f"{panel.title}: "
        dx = k * HTML_OFFSET_X
        xs = [float(p[0]) + dx for p in panel.positions]
        ys = [float(p[1]) for p in panel.positions]
        net.add_node(
            f"{prefix}__title__",
            label=panel.title,
            shape="text",
            x=sum(xs) / len(xs),
            y=min(ys) - 120,
            physics=False,
            font={"size": 22},
        )
        for name, x, y in zip(panel.nodes, xs, ys):
            net.add_node(
                prefix + name, label=name, shape="dot", size=10, color=NODE_COLOR, x=x, y=y, physics=False
            )
        widths = _widths(panel.matrix, 1.0, 8.0)
        for i, a in enumerate(panel.nodes):
            for j, b in enumerate(panel.nodes):
                w = float(panel.matrix[i, j])
                if w > 0:
                    net.add_edge(
                        prefix + a,
                        prefix + b,
                        width=float(widths[i, j]),
                        label=_label(w),
                        arrows="to",
                        title=f"{a} -> {b}: {_label(w)}",
                    )
    html = net.generate_html(name=str(path), notebook=False)
    Path(path).write_text(html, encoding="utf-8")


def panels_for(title: str, nodes: Sequence[str], positions: np.ndarray, matrix: np.ndarray) -> List[Panel]:
    """A one-panel list (helper for callers)."""
    return [Panel(title, tuple(nodes), np.asarray(positions, dtype=float), np.asarray(matrix, dtype=float))]
