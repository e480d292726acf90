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
    mark_unused: bool = False
    """Draw the modes with no transition in or out hollow and say "not used" (the student's panel)."""


def short_id(user: str, keep: int = 8) -> str:
    """A student id short enough for a title (``53a6788c…`` for a UUID); short ids unchanged."""
    return user if len(user) <= keep + 2 else user[:keep] + "\u2026"


def unused_modes(panel: Panel) -> List[str]:
    """The nodes with no transition into or out of them."""
    used = panel.matrix.sum(axis=0) + panel.matrix.sum(axis=1)
    return [name for name, u in zip(panel.nodes, used) if u <= 0]


def _top(panels: Sequence[Panel]) -> float:
    """The largest weight of all panels: one width scale for every panel (and one legend)."""
    top = max((float(p.matrix.max()) for p in panels if p.matrix.size), default=0.0)
    return top if top > 0 else 1.0


def _width(weight: float, top: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * weight / top


def _widths(matrix: np.ndarray, lo: float, hi: float) -> np.ndarray:
    top = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
    return lo + (hi - lo) * matrix / top


def _label(weight: float) -> str:
    return str(int(weight)) if float(weight).is_integer() else f"{weight:.2f}"


LINE_LO, LINE_HI = 1.0, 7.0
UNUSED_FACE, UNUSED_EDGE = "white", "#a0aec0"


def _draw_panel(ax: Any, panel: Panel, top: float) -> None:
    from matplotlib.patches import FancyArrowPatch  # noqa: PLC0415 (tools extra)

    pos = panel.positions.astype(float).copy()
    pos[:, 1] = -pos[:, 1]  # y down (vis-network) -> y up (matplotlib)
    radius = 34.0
    n = len(panel.nodes)
    label_box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}
    for i in range(n):
        for j in range(n):
            w = float(panel.matrix[i, j])
            if w <= 0:
                continue
            lw = _width(w, top, LINE_LO, LINE_HI)
            if i == j:
                x, y = pos[i]
                loop = FancyArrowPatch(
                    (x - 16, y + 20),
                    (x + 16, y + 20),
                    connectionstyle="arc3,rad=-2.4",
                    arrowstyle="-|>",
                    mutation_scale=12,
                    lw=lw,
                    color=EDGE_COLOR,
                    alpha=0.8,
                    zorder=1,
                )
                ax.add_patch(loop)
                ax.text(x, y + 74, _label(w), ha="center", va="bottom", fontsize=9, zorder=4, bbox=label_box)
                continue
            start, end = pos[i], pos[j]
            arrow = FancyArrowPatch(
                tuple(start),
                tuple(end),
                connectionstyle="arc3,rad=0.12",
                arrowstyle="-|>",
                mutation_scale=14,
                lw=lw,
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
            ax.text(lx, ly, _label(w), ha="center", va="center", fontsize=9, zorder=4, bbox=label_box)
    unused = set(unused_modes(panel)) if panel.mark_unused else set()
    face = [UNUSED_FACE if name in unused else NODE_COLOR for name in panel.nodes]
    edge = [UNUSED_EDGE if name in unused else "#2b7ce9" for name in panel.nodes]
    ax.scatter(pos[:, 0], pos[:, 1], s=900, c=face, edgecolors=edge, linewidths=1.5, zorder=2)
    for (x, y), name in zip(pos, panel.nodes):
        if name in unused:
            ax.text(x, y, "not\nused", ha="center", va="center", fontsize=7, color="#718096", zorder=3)
        ax.text(x, y - radius - 6, name, ha="center", va="top", fontsize=10, zorder=3,
                color="#718096" if name in unused else "black")  # fmt: skip
    ax.set_xlim(pos[:, 0].min() - 75, pos[:, 0].max() + 75)
    ax.set_ylim(pos[:, 1].min() - radius - 30, pos[:, 1].max() + radius + 50)
    ax.set_aspect("equal")
    ax.axis("off")
    total = int(panel.matrix.sum()) if float(panel.matrix.sum()).is_integer() else panel.matrix.sum()
    ax.set_title(f"{panel.title}\n{total} transitions", fontsize=11)


def figure(panels: Sequence[Panel]) -> Any:
    """The matplotlib Figure of the panels side by side, one edge-width scale and legend for all."""
    import matplotlib  # noqa: PLC0415 (tools extra, never imported by the service)

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415

    fig = Figure(figsize=(5.0 * len(panels), 5.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    top = _top(panels)
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel, top)
    steps = sorted({1.0, float(round(top / 2)) or 1.0, top}) if top > 1 else [1.0]
    handles = [
        Line2D([], [], color=EDGE_COLOR, alpha=0.75, lw=_width(w, top, LINE_LO, LINE_HI), label=_label(w))
        for w in steps
    ]
    if any(p.mark_unused and unused_modes(p) for p in panels):
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                ms=11,
                mfc=UNUSED_FACE,
                mec=UNUSED_EDGE,
                label="mode the student never used",
            )
        )
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        frameon=False,
        fontsize=9,
        title="edge width = transitions from one mode to the next (number on the edge)",
        title_fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1), w_pad=4.0)
    return fig


def draw_png(path: Path, panels: Sequence[Panel], dpi: int = 110) -> None:
    """Write the panels side by side to a PNG file."""
    figure(panels).savefig(str(path), format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.15)


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
