"""fuse-activation: fold Relu and Clip into the fused clamp of the layer before.

Rewrites: y = Relu(t) or y = Clip(t) {min, max}, where t is produced by a Conv,
ConvTranspose or Gemm and read by nothing else (not a graph output either):
the layer's clamp [act_min, act_max] becomes its intersection with [0, inf)
(Relu) or [min, max] (Clip; None is unbounded), the layer produces y itself and
the Relu/Clip node is removed. When the intersection would be empty the nodes
are left alone (a clamp with act_min > act_max is invalid).

Requires: a valid graph; Clip bounds are attributes (the front end makes them so).

Guarantees: a valid graph with the same interface computing bit-identical
outputs. The layers clamp their float64 result before the one cast to the
output type, while Relu/Clip clamp after it with bounds cast to that type; since
rounding is monotonic, both give the same value.
"""

from __future__ import annotations

import dataclasses

from nnc.ir import Graph, Node
from nnc.passmanager import Pass, register_pass
from nnc.records import record

LAYERS = ("Conv", "ConvTranspose", "Gemm")


@register_pass
@record
class FuseActivation(Pass):
    name = "fuse-activation"

    def run(self, graph: Graph) -> Graph:
        for act in graph.nodes():
            if act.op in ("Relu", "Clip"):
                _try_fuse(graph, act)
        return graph


def _bounds(act: Node) -> tuple[float | None, float | None]:
    if act.op == "Relu":
        return 0.0, None
    return act.attrs.min, act.attrs.max


def _intersect(a: tuple, b: tuple) -> tuple[float | None, float | None]:
    lows = [v for v in (a[0], b[0]) if v is not None]
    highs = [v for v in (a[1], b[1]) if v is not None]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _try_fuse(graph: Graph, act: Node) -> None:
    t = act.inputs[0]
    layer = graph.producer(t)
    if layer is None or layer.op not in LAYERS or graph.uses(t) != 1:
        return
    lo, hi = _intersect((layer.attrs.act_min, layer.attrs.act_max), _bounds(act))
    if lo is not None and hi is not None and lo > hi:
        return
    attrs = dataclasses.replace(layer.attrs, act_min=lo, act_max=hi)
    graph.remove_node(act.name)
    graph.remove_node(layer.name)
    outputs = [act.outputs[0] if o == t else o for o in layer.outputs]
    graph.add_node(Node(layer.name, layer.op, list(layer.inputs), outputs, attrs))
    del graph.tensors[t]
