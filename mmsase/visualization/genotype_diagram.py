"""The searched SASE block drawn as the paper's Figure 2, with how sure the search is per edge.

The DAG of spec §1: ``z = cs(x)``, ``m1 = ce1(z)``, ``m2 = ce2(z)``, ``x' = x ⊙ m2``,
``u1 = ss1(x)``, ``u2 = ss2(x')``, ``h = fuse(u1, u2)``, ``ms = se(h)``,
``y = x ⊙ (m1 + ms) / 2``. The six searched edges carry the chosen operation and its weight
in ``softmax(α)``; the fixed connections (⊙, fuse) are thin grey arrows.

**Undecided edges.** An edge is *undecided* when its two largest softmax weights differ by
less than ``margin`` (absolute, default :data:`DEFAULT_MARGIN` = 0.01). With seven
operations the uniform weight is 1/7 ≈ 0.143, so 0.01 is about 7 % of it: a pick by a
smaller lead is within the noise of a short search (after the digits demo's 6 epochs, edge
``ce2``'s seven weights lie within 0.140–0.145). An undecided edge is drawn dashed and
grey and names both candidates. The rule is absolute, not relative, because early in a
search all weights sit near 1/7 and a ratio rule would only rescale that constant.
"""
import io
import math
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmsase.models.search_space import EDGES

#: Two top weights closer than this (absolute softmax weight) make an edge undecided.
DEFAULT_MARGIN = 0.01


class EdgeDecision(NamedTuple):
    """What the search chose on one edge."""
    edge: str
    op: str  #: the operation with the largest weight (what ``derive()`` picks)
    weight: float
    runner_up: str  #: the operation with the second largest weight
    runner_up_weight: float
    decided: bool  #: ``weight - runner_up_weight >= margin``


def edge_decisions(probabilities: Sequence[Sequence[float]],
                   op_names: Mapping[str, Sequence[str]],
                   margin: float = DEFAULT_MARGIN,
                   excluded: Sequence[str] = ()) -> List[EdgeDecision]:
    """One :class:`EdgeDecision` per edge (in the order of ``op_names``, the order of ``α``'s
    rows) from ``softmax(α)`` rows (``ArchitectureParams.probabilities()``, a tensor or
    nested lists) and the operation names per edge (``ArchitectureParams.op_names``);
    operations in ``excluded`` (AutoLA's ``none``, which ``derive()`` passes over) are not
    candidates."""
    if margin < 0:
        raise ValueError(f'margin must be >= 0, got {margin}')
    rows = probabilities.tolist() if hasattr(probabilities, 'tolist') else probabilities
    if len(rows) != len(op_names):
        raise ValueError(f'expected {len(op_names)} rows of weights (one per edge), '
                         f'got {len(rows)}')
    decisions = []
    for edge, row in zip(op_names, rows):
        names = op_names[edge]
        if len(row) != len(names) or len(row) < 2:
            raise ValueError(f'edge {edge!r}: {len(row)} weights for {len(names)} operations')
        order = sorted((j for j in range(len(row)) if names[j] not in excluded),
                       key=lambda j: row[j], reverse=True)
        first, second = order[0], order[1]
        decisions.append(EdgeDecision(
            edge, names[first], float(row[first]), names[second], float(row[second]),
            bool(row[first] - row[second] >= margin)))
    return decisions


# Node positions (x right, y up) and the drawing of spec §1's DAG.
_NODES: Dict[str, tuple] = {
    'x': (0.0, 2.0), 'z': (2.6, 3.6), 'm1': (5.6, 4.4), 'm2': (5.6, 2.8),
    'x\'': (7.4, 2.8), 'u1': (5.6, 0.6), 'u2': (10.2, 2.8), 'h': (11.4, 1.2),
    'ms': (14.0, 1.2), 'y': (15.6, 3.2),
}
#: searched edge -> (source node, target node)
_SEARCHED = {
    'cs': ('x', 'z'), 'ce1': ('z', 'm1'), 'ce2': ('z', 'm2'),
    'ss1': ('x', 'u1'), 'ss2': ('x\'', 'u2'), 'se': ('h', 'ms'),
}
#: fixed connections: (source, target, label, arc curvature)
_FIXED = [
    ('x', 'x\'', '', 0.22), ('m2', 'x\'', '⊙', 0.0), ('u1', 'h', '', 0.1),
    ('u2', 'h', 'fuse', 0.0), ('x', 'y', '', -0.45), ('m1', 'y', '', -0.1),
    ('ms', 'y', '⊙ (m1+ms)/2', 0.15),
]
_CHANNEL = {'cs', 'ce1', 'ce2'}
_LABEL_BELOW = {'cs', 'ce2', 'ss1'}  # edges whose label goes under the arrow, away from others


def draw_genotype(probabilities: Sequence[Sequence[float]],
                  op_names: Mapping[str, Sequence[str]],
                  margin: float = DEFAULT_MARGIN,
                  title: Optional[str] = None) -> bytes:
    """PNG bytes of the block's DAG: each searched edge labelled with its operation and
    softmax weight, undecided edges (see the module docstring) dashed grey with both
    candidates. Arguments as :func:`edge_decisions`."""
    decisions = edge_decisions(probabilities, op_names, margin)
    figure = Figure(figsize=(13, 5.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.01, 0.08, 0.98, 0.84))
    axes.set_xlim(-0.8, 16.4)
    axes.set_ylim(-0.3, 6.4)
    axes.set_axis_off()

    def arrow(source, target, style, color, width, curvature):
        axes.annotate(
            '', xy=_NODES[target], xytext=_NODES[source],
            arrowprops=dict(arrowstyle='-|>', color=color, lw=width, linestyle=style,
                            shrinkA=16, shrinkB=16, mutation_scale=14,
                            connectionstyle=f'arc3,rad={curvature}'))

    for source, target, label, curvature in _FIXED:
        arrow(source, target, '-', '0.6', 1.0, curvature)
        if label:
            (x0, y0), (x1, y1) = _NODES[source], _NODES[target]
            axes.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.22, label, ha='center',
                      fontsize=9, color='0.4')
    for decision in decisions:
        source, target = _SEARCHED[decision.edge]
        color = ('tab:blue' if decision.edge in _CHANNEL else 'tab:green') \
            if decision.decided else '0.55'
        arrow(source, target, '-' if decision.decided else '--', color, 2.4, 0.0)
        label = f'{decision.edge}: {decision.op} {decision.weight:.3f}'
        if not decision.decided:
            label = (f'{decision.edge}: undecided\n{decision.op} {decision.weight:.4f}'
                     f' ≈ {decision.runner_up} {decision.runner_up_weight:.4f}')
        (x0, y0), (x1, y1) = _NODES[source], _NODES[target]
        below = decision.edge in _LABEL_BELOW
        length = math.hypot(x1 - x0, y1 - y0)
        side = -0.12 if below else 0.12  # along the normal of the arrow
        axes.text((x0 + x1) / 2 - side * (y1 - y0) / length,
                  (y0 + y1) / 2 + side * (x1 - x0) / length, label,
                  ha='center', va='top' if below else 'bottom',
                  rotation=math.degrees(math.atan2(y1 - y0, x1 - x0)),
                  rotation_mode='anchor', transform_rotates_text=True,
                  fontsize=9.5, color='0.25' if not decision.decided else color,
                  fontweight='bold' if decision.decided else 'normal')
    for name, (x, y) in _NODES.items():
        axes.text(x, y, name, ha='center', va='center', fontsize=12,
                  bbox=dict(boxstyle='circle,pad=0.35', fc='white', ec='black', lw=1.2))

    undecided = [d.edge for d in decisions if not d.decided]
    figure.suptitle(title or 'SASE block: searched operation and softmax(α) weight per edge',
                    fontsize=12)
    figure.text(0.5, 0.03,
                f'blue: channel branch, green: spatial branch; dashed grey: undecided (top two '
                f'weights within {margin:g}): '
                + (', '.join(undecided) if undecided else 'none'),
                ha='center', fontsize=9.5)
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    return buffer.getvalue()


def can_draw(architecture) -> bool:
    """Whether :func:`draw_architecture` can draw ``architecture`` (SASE's DAG only)."""
    return tuple(architecture.op_names) == EDGES


def draw_architecture(architecture, margin: float = DEFAULT_MARGIN,
                      title: Optional[str] = None) -> bytes:
    """:func:`draw_genotype` of an :class:`~mmsase.models.sase.supernet.ArchitectureParams`."""
    return draw_genotype(architecture.probabilities().detach().cpu().tolist(),
                         architecture.op_names, margin, title)
