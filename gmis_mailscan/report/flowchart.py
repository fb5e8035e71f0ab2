"""Where the boxes and arrows of the flowchart (rules/diagram.toml) go, for one institution.

Pure geometry: the HTML template draws what this returns as inline SVG, so every text in the
picture passes the template's escaping like the rest of the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from .texts import Diagram, Texts

COL_W, ROW_H = 128, 100  # grid cell
BOX_W, BOX_H = 118, 60
LINE_H, TOP = 15, 16
WIDTH = 6 * COL_W


@dataclass(frozen=True)
class Line:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Box:
    id: str
    x: float
    y: float
    w: float
    h: float
    lines: tuple[Line, ...]
    kind: str  # question | end
    tone: str  # question | done | review | action (the colour of an end box on the path)
    on: bool  # on this institution's path
    step: int | None  # its number along the path
    added: bool


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    points: str  # SVG polyline points
    label: str
    label_x: float
    label_y: float
    on: bool
    beside: bool = False  # the answer is written beside a straight arrow, not across it


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]


def _centre(diagram: Diagram, node_id: str) -> tuple[float, float]:
    node = diagram.nodes[node_id]
    return (node.col + 0.5) * COL_W, TOP + BOX_H / 2 + node.row * ROW_H


def layout(state: str, texts: Texts) -> Chart:
    """The flowchart with `state`'s path (boxes, arrows, step numbers) marked on."""
    diagram = texts.diagram
    path = diagram.paths.get(state, ())
    on_edges = set(zip(path, path[1:], strict=False))
    boxes = []
    for node in diagram.nodes.values():
        cx, cy = _centre(diagram, node.id)
        lines = node.lines[texts.lang]
        first = cy - (len(lines) - 1) * LINE_H / 2 + 4
        tone = "question"
        if node.kind == "end":
            tone = {"none": "done", "review": "review"}.get(node.path or "", "action")
        boxes.append(
            Box(
                id=node.id,
                x=cx - BOX_W / 2,
                y=cy - BOX_H / 2,
                w=BOX_W,
                h=BOX_H,
                lines=tuple(Line(cx, first + i * LINE_H, t) for i, t in enumerate(lines)),
                kind=node.kind,
                tone=tone,
                on=node.id in path,
                step=path.index(node.id) + 1 if node.id in path else None,
                added=node.added,
            )
        )
    arrows = [
        _arrow(diagram, s, t, e.labels[texts.lang], (s, t) in on_edges)
        for (s, t), e in diagram.edges.items()
    ]
    arrows.sort(key=lambda a: a.on)  # the path is drawn last, over the other arrows
    height = TOP + max(n.row for n in diagram.nodes.values()) * ROW_H + BOX_H + TOP
    return Chart(WIDTH, int(height), tuple(boxes), tuple(arrows))


def _arrow(diagram: Diagram, source: str, target: str, label: str, on: bool) -> Arrow:
    (sx, sy), (tx, ty) = _centre(diagram, source), _centre(diagram, target)
    if sy == ty:  # same row: straight across, the answer above the line
        start, end = sx + BOX_W / 2, tx - BOX_W / 2
        points = f"{start:g},{sy:g} {end:g},{ty:g}"
        return Arrow(source, target, points, label, (start + end) / 2, sy - 7, on)
    top = ty - BOX_H / 2
    if sx == tx:  # straight down
        points = f"{sx:g},{sy + BOX_H / 2:g} {tx:g},{top - 2:g}"
        return Arrow(
            source, target, points, label, tx + 8, (sy + BOX_H / 2 + top) / 2 + 4, on, True
        )
    elbow = top - 28
    points = f"{sx:g},{sy + BOX_H / 2:g} {sx:g},{elbow:g} {tx:g},{elbow:g} {tx:g},{top - 2:g}"
    return Arrow(source, target, points, label, tx, top - 8, on)
