"""The canonicalize rule that rewrites InstanceNormalization into ops every
target runs.

InstanceNormalization(x [N, C, D1, ...], scale, B) normalizes each (n, c) over
D1.. — what LayerNormalization with axis 2 does — and then applies a
per-channel scale and bias. `instance_norm_to_layer_norm` replaces the node by

    LayerNormalization(x, ones [D1, ...], axis=2, epsilon)
    → Mul(·, scale [C, 1, ...]) → Add(·, B [C, 1, ...])

so the quantizer makes it a QLayerNorm and two per-channel QAffines, and the
float targets run their LayerNormalization kernel and broadcasting arithmetic.
(A BatchNormalization would be one QAffine, but the layout pass wraps a
standalone one in Transposes to channels-last.) PyTorch's
InstanceNorm exports the node itself; its GroupNorm exports Reshape to
[N, G, ·] → InstanceNormalization (scale 1, B 0) → Reshape → Mul → Add. The
values are the same function in float64, equal up to float32 rounding. Each
rewrite lowers the graph's count of InstanceNormalizations by one, so
rewriting terminates.
"""

from __future__ import annotations

import numpy as np

from nnc.dtypes import to_numpy
from nnc.ir import Graph, Node
from nnc.ops.layernorm import LayerNormAttrs
from nnc.ops.registry import NoAttrs

from .graph_edits import drop_unused_constant, new_value
from .rule_dispatch import fires_on


@fires_on("InstanceNormalization")
def instance_norm_to_layer_norm(graph: Graph, node: Node) -> bool:
    if node.op != "InstanceNormalization":
        return False
    x, scale, bias = node.inputs
    data = graph.tensor(x)
    per_channel = (-1, *(1,) * (len(data.shape) - 2))
    dtype = to_numpy(data.dtype)
    ones, channel_scale, channel_bias = (
        graph.add_constant(f"{node.name}.{role}", values.astype(dtype)).name
        for role, values in (("ones", np.ones(data.shape[2:])), ("scale", graph.constant(scale).reshape(per_channel)),
                             ("bias", graph.constant(bias).reshape(per_channel))))
    normalized, scaled = (new_value(graph, f"{node.name}.{what}", data.dtype, data.shape, data.layout)
                          for what in ("normalized", "scaled"))
    graph.remove_node(node.name)
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.normalize"), "LayerNormalization", [x, ones],
                        [normalized], LayerNormAttrs(2, node.attrs.epsilon)))
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.scale"), "Mul", [normalized, channel_scale], [scaled],
                        NoAttrs()))
    graph.add_node(Node(node.name, "Add", [scaled, channel_bias], list(node.outputs), NoAttrs()))
    for name in (scale, bias):
        drop_unused_constant(graph, name)
    return True
