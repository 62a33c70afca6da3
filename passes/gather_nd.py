"""The canonicalize rule that rewrites a GatherND with constant indices into a
Gather, which every target runs.

GatherND(data [d0, ..., d_{k-1}, rest...], indices [j..., k]) with no batch
dims selects, for each index row (i_0, ..., i_{k-1}), the slice
data[i_0, ..., i_{k-1}]. With the leading k axes flattened that is row
i_0·d1·...·d_{k-1} + ... + i_{k-1} of a [d0·...·d_{k-1}, rest...] tensor, so
`gather_nd_to_gather` replaces the node by

    Reshape(data, [d0·...·d_{k-1}, rest...]) → Gather(·, flat indices [j...], axis 0)

(no Reshape when k = 1), the flat indices computed now from the constant
(negative components count from the end first, as GatherND does). The values
are the same, bit for bit. PyTorch's dynamo exports a 1-D linear Upsample as
two such GatherNDs. Each rewrite removes one GatherND, so rewriting terminates.
"""

from __future__ import annotations

import math

import numpy as np

from nnc.ir import Graph, Node
from nnc.ops.indexing import GatherAttrs, clamp_indices
from nnc.ops.shape import ReshapeAttrs

from .graph_edits import drop_unused_constant, new_value
from .rule_dispatch import fires_on


@fires_on("GatherND")
def gather_nd_to_gather(graph: Graph, node: Node) -> bool:
    if node.op != "GatherND" or node.attrs.batch_dims != 0:
        return False
    indices = graph.constant(node.inputs[1])
    if indices is None:
        return False
    data = graph.tensor(node.inputs[0])
    k = indices.shape[-1]
    lead = data.shape[:k]
    flat = np.ravel_multi_index(tuple(clamp_indices(indices[..., a], lead[a]) for a in range(k)), lead)
    source = node.inputs[0]
    if k > 1:
        source = new_value(graph, f"{node.name}.rows", data.dtype, (math.prod(lead), *data.shape[k:]))
        graph.add_node(Node(graph.unique_node_name(f"{node.name}.rows"), "Reshape", [node.inputs[0]], [source],
                            ReshapeAttrs((math.prod(lead), *data.shape[k:]))))
    rows = graph.add_constant(f"{node.name}.flat_indices", flat.astype(np.int64)).name
    graph.remove_node(node.name)
    graph.add_node(Node(node.name, "Gather", [source, rows], list(node.outputs), GatherAttrs(0)))
    drop_unused_constant(graph, node.inputs[1])
    return True
