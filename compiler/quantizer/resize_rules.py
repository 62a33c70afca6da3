"""Lowering rule of Resize (docs/numerics.md §17):

    Resize, mode nearest   → ResizeNearest on the integers with its index table
                             (data movement: the output keeps the input's
                             parameters; Clip or Requantize after it otherwise)
    Resize, mode linear    → QResize with a fixed-point weight table
                             (WEIGHT_BITS per spatial axis, at most two axes)

The float model plans Resize's output with its input's parameters
(annotate.SAME_AS_INPUT): interpolation never leaves the input's range.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph
from ..numerics import quantize_multiplier
from ..ops.conv import split_shape
from ..ops.qresize import MAX_WEIGHT_BITS_TOTAL, QResizeAttrs, ResizeNearestAttrs, linear_table
from ..ops.resize import linear_taps, nearest_indices
from .emit import add_node, constant, staging
from .groups import Group, rule

WEIGHT_BITS = 11  # per axis: 2-D weights 2^22, |acc| <= 255 · 2^22 < 2^30


@rule("Resize")
def lower_resize(graph: Graph, group: Group) -> None:
    x, attrs = group.operand(0), group.node.attrs
    _, _, spatial = split_shape(graph.tensor(x.tensor).shape, attrs.channels_last)
    if attrs.mode == "nearest":
        index = np.concatenate([nearest_indices(attrs, a, size) for a, size in enumerate(spatial)])
        table = constant(graph, f"{group.name}.index", index.astype(np.int32))
        target = staging(graph, group, x.affine)
        add_node(graph, group.name, "ResizeNearest", [x.tensor, table], [target],
                 ResizeNearestAttrs(attrs.sizes, attrs.channels_last))
        return
    if WEIGHT_BITS * len(spatial) > MAX_WEIGHT_BITS_TOTAL:
        raise UnsupportedError(f"Resize node {group.name!r}: integer linear resize works on 1 or 2 spatial "
                               f"axes, not {len(spatial)}")
    taps = [linear_taps(attrs, a, size) for a, size in enumerate(spatial)]
    table = constant(graph, f"{group.name}.table", linear_table(taps, WEIGHT_BITS))
    m, n = quantize_multiplier(x.affine.scale / (group.out.scale * 2.0 ** (WEIGHT_BITS * len(spatial))))
    lo, hi = group.bounds()
    qattrs = QResizeAttrs(attrs.sizes, attrs.channels_last, WEIGHT_BITS, x.affine.zero_point, group.out.zero_point,
                          m, n, lo, hi, group.out.dtype)
    add_node(graph, group.name, "QResize", [x.tensor, table], [group.output], qattrs)
