"""canonicalize: local simplifications of data-movement ops, run to a fixpoint.

Rewrites, each a rule `rule(graph, node) -> bool` (True when it changed the
graph) that other passes reuse through `rewrite(graph, rules)` (`layout` does):
- `remove_identity_transpose`: Transpose(x, perm = 0,1,..) -> x;
- `compose_transposes`: Transpose(Transpose(x, p1), p2) -> Transpose(x, p1∘p2);
- `transpose_to_reshape`: a Transpose that keeps the memory order (only axes of
  extent 1 move relative to the others) -> Reshape, once no Transpose reads it
  (composing comes first);
- `merge_reshapes`: Reshape(Reshape(x)) -> Reshape(x);
- `remove_noop_reshape`: a Reshape to its input's own shape -> x;
- `merge_duplicates`: two Transposes (or two Reshapes) of one tensor with equal
  attributes -> one;
- `reshape_through_unary`: Reshape -> ops acting per element -> Reshape: the first
  Reshape disappears into the second, and the ops in between (element-wise ops
  whose constants are single values, per-tensor Quantize/DequantizeLinear) run on
  the un-reshaped tensor. Such ops ignore shape, so no value changes;
- `split_to_slices` (split_to_slices.py): Split -> one Slice per used output;
- `fuse_gelu` (fuse_gelu.py): GELU decomposed as PyTorch exports it below opset
  20 (x · 0.5 · (1 + Erf(x / √2)) or its tanh form) -> Gelu(x): the same
  function, equal up to float32 rounding;
- `fuse_silu` (fuse_silu.py): Mul(x, Sigmoid(x)) -> Silu(x): the same function,
  equal up to float32 rounding;
- `fold_gemm_scale` (fold_gemm_scale.py): Mul(Gemm(...), constant scalar k), or
  of a Reshape of the Gemm -> the Gemm with alpha and beta times k;
- `fuse_softmax_mask` (fuse_softmax_mask.py): Add(scores, constant attention
  mask of 0 and -inf) -> Softmax, or Where(constant mask, fill, scores) ->
  Softmax (masked_fill), becomes Softmax(scores, keep mask): the same values,
  the fill no longer a tensor to quantize;
- `fuse_softmax_scale` (fuse_softmax_scale.py): Softmax or LogSoftmax of
  Mul(t, constant k > 0) or Div(t, k) (attention's 1/√d), or of a MatMul with
  such a factor on an operand (scaled_dot_product_attention) -> its `scale`
  times k (1/k): no requantization of its own once quantized;
- `instance_norm_to_layer_norm` (instance_norm.py): InstanceNormalization ->
  LayerNormalization over the spatial axes, then a per-channel Mul and Add;
- `gather_nd_to_gather` (gather_nd.py): GatherND with constant indices and no
  batch dims -> Gather of the flattened leading axes;
- `depth_space_to_transpose` (depth_space.py): DepthToSpace, SpaceToDepth
  (PixelShuffle) -> Reshape, Transpose, Reshape;
- `fuse_softplus_threshold` (fuse_softplus.py): Where(Greater(x, T ≥ 15), x,
  Softplus(x)), dynamo's export of softplus, -> Softplus(x);
- `fuse_softsign` (fuse_softsign.py): x / (1 + |x|), dynamo's export of
  softsign, -> Softsign(x);
- `norm_reduction_to_sum` (norm_reductions.py): ReduceL1, ReduceL2,
  ReduceSumSquare -> ReduceSum of Abs(x) or x · x (and Sqrt for L2);
- `einsum_to_matmul` (einsum.py): an Einsum of the matrix-multiply kind ->
  Transpose, Reshape, MatMul, Reshape, Transpose; a permutation -> Transpose;
- `cumsum_to_matmul` (cumsum.py): a float CumSum -> MatMul of a constant
  triangular matrix by x (a Reshape or Transposes around it);
- `where_to_activation` (fuse_where_activation.py): Where(x > 0, x, a · x) ->
  LeakyRelu(a), Where(x > t, x, 0) -> ThresholdedRelu(t) (and the mirrored forms);
- `vector_operand_to_matrix` (matmul_vector.py): a MatMul's constant 1-D
  operand (attention pooling's h @ q) -> a [K, 1] or [1, K] matrix, and a
  Reshape dropping that axis from the product.

Requires: a valid graph.
Guarantees: a valid graph with the same graph input and output names, types and
values, bit for bit (only data movement changes; fuse_gelu, fuse_silu, fuse_softsign,
fold_gemm_scale, fuse_softmax_scale's Div or MatMul operand and
instance_norm_to_layer_norm up to float32 rounding); no rule
applies any more,
except where applying it would rename a graph input or output (e.g. an identity
Transpose from a graph input straight to a graph output stays, as a Reshape).
Termination: every rewrite lowers (number of InstanceNormalizations,
GatherNDs, DepthToSpaces, SpaceToDepths, norm reductions and Einsums,
number of Transposes, total length of Transpose->Transpose chains, number of
Reshapes) in lexicographic order
(fuse_gelu removes at least four compute nodes and adds one, fuse_silu removes
two and adds one, fold_gemm_scale, fuse_softmax_mask and fuse_softmax_scale
remove one);
`rewrite` also stops after a step bound as a safety net.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


from nnc.ir import Graph, Node, Tensor
from nnc.ops import get_op
from nnc.ops.shape import ReshapeAttrs, TransposeAttrs
from nnc.passmanager import Pass, register_pass

from .rule_dispatch import Deferred, fires_on, rules_for
from .graph_edits import drop_if_dead, new_value, single_use
from nnc.records import record

Rule = Callable[[Graph, Node], bool]
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@register_pass
@record
class Canonicalize(Pass):
    name = "canonicalize"

    def run(self, graph: Graph) -> Graph:
        rewrite(graph, CANONICAL_RULES)
        return graph


# -- permutations ------------------------------------------------------------------
def compose(first: tuple[int, ...], then: tuple[int, ...]) -> tuple[int, ...]:
    """Perm of transpose(transpose(x, first), then) as one transpose of x."""
    return tuple(first[i] for i in then)


def inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def is_identity(perm: tuple[int, ...]) -> bool:
    return tuple(perm) == tuple(range(len(perm)))


def keeps_memory_order(perm: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """True when transpose(x, perm) lists x's elements in the same row-major order,
    i.e. the axes of extent > 1 keep their relative order."""
    moved = [a for a in perm if shape[a] != 1]
    return moved == sorted(moved)


def permute(seq, perm: tuple[int, ...]):
    """seq reordered as transpose orders axes: result[i] = seq[perm[i]] (a str stays a str)."""
    items = [seq[p] for p in perm]
    return "".join(items) if isinstance(seq, str) else tuple(items)


# -- graph editing helpers (shared with layout) --------------------------------------
def alive(graph: Graph, node: Node) -> bool:
    return graph.has_node(node.name) and graph.node(node.name) is node


def data_inputs(graph: Graph, node: Node) -> list[int]:
    """Indices of the node's inputs that are computed at run time (not constants)."""
    return [i for i, t in enumerate(node.inputs) if t and not graph.tensor(t).is_constant]


def only_feeds(graph: Graph, tensor: str, node: Node) -> bool:
    """True when every use of `tensor` is an input of `node` (not a graph output)."""
    return tensor not in graph.outputs and all(c.name == node.name for c in graph.consumers(tensor))


def permuted_tensor(graph: Graph, like: Tensor, perm: tuple[int, ...]) -> str:
    """Declare a new tensor holding transpose(like, perm): shape, layout and
    quantization axis follow the permutation."""
    layout = permute(like.layout, perm) if like.layout else None
    quant = like.quant
    if quant is not None and quant.axis is not None:
        quant = dataclasses.replace(quant, axis=inverse(perm)[quant.axis])
    return new_value(graph, like.name, like.dtype, permute(like.shape, perm), layout, quant)


def add_transpose(graph: Graph, src: str, perm: tuple[int, ...], out: str | None = None,
                  name: str | None = None) -> str:
    """Add Transpose(src, perm); its output is `out` (declared) or a new tensor."""
    if out is None:
        out = permuted_tensor(graph, graph.tensor(src), perm)
    node_name = graph.unique_node_name(name or f"{src}.transpose")
    graph.add_node(Node(node_name, "Transpose", [src], [out], TransposeAttrs(tuple(perm))))
    return out


def bypass(graph: Graph, node: Node, src: str) -> bool:
    """Remove single-output `node`, whose output equals tensor `src` in shape and
    value, rewiring its readers to `src`. When the output is a graph output, `src`
    is renamed to it instead, which is refused (False) when `src` is itself a
    graph input, graph output or constant."""
    out = node.outputs[0]
    kept = graph.tensor(out)
    if out not in graph.outputs:
        graph.remove_node(node.name)
        graph.replace_uses(out, src)
        del graph.tensors[out]
        _inherit(graph, src, kept)
    elif src in graph.inputs or src in graph.outputs or graph.producer(src) is None:
        return False
    else:
        graph.remove_node(node.name)
        _rename_produced(graph, src, out)
    for name in node.inputs:
        drop_if_dead(graph, name)
    return True


def _inherit(graph: Graph, name: str, other: Tensor) -> None:
    """Give tensor `name` the layout and quantization of an equal tensor it replaces
    when it has none of its own."""
    t = graph.tensor(name)
    graph.tensors[name] = dataclasses.replace(t, layout=t.layout or other.layout, quant=t.quant or other.quant)


def _rename_produced(graph: Graph, old: str, new: str) -> None:
    """The producer of `old` produces the declared, unproduced tensor `new` instead."""
    producer = graph.producer(old)
    graph.replace_uses(old, new)
    graph.remove_node(producer.name)
    outputs = [new if t == old else t for t in producer.outputs]
    graph.add_node(Node(producer.name, producer.op, list(producer.inputs), outputs, producer.attrs))
    _inherit(graph, new, graph.tensor(old))
    del graph.tensors[old]


# -- the rewriting driver ----------------------------------------------------------
def rewrite(graph: Graph, rules: tuple[Rule, ...], max_steps: int | None = None) -> int:
    """Apply `rules` until none fires; returns the number of rewrites. Each sweep
    visits the nodes in topological order and applies the first rule that fires.
    The rules' termination measure bounds the steps; `max_steps` (default
    4·|nodes|² + 256) is a safety net, after which the (valid) graph is returned."""
    limit = max_steps if max_steps is not None else 4 * len(graph) ** 2 + 256
    steps = 0
    fired = True
    firing = rules_for(rules)  # only the rules that can fire on a node's op (rule_dispatch.py)
    while fired and steps < limit:
        fired = False
        for node in graph.nodes():
            if steps < limit and alive(graph, node) and any(rule(graph, node) for rule in firing(node.op)):
                steps += 1
                fired = True
    return steps


# -- rules -------------------------------------------------------------------------
@fires_on("Transpose")
def remove_identity_transpose(graph: Graph, node: Node) -> bool:
    return node.op == "Transpose" and is_identity(node.attrs.perm) and bypass(graph, node, node.inputs[0])


@fires_on("Transpose")
def compose_transposes(graph: Graph, node: Node) -> bool:
    up = graph.producer(node.inputs[0]) if node.op == "Transpose" else None
    if up is None or up.op != "Transpose":
        return False
    node.attrs = TransposeAttrs(compose(up.attrs.perm, node.attrs.perm))
    graph.set_inputs(node, [up.inputs[0]])
    drop_if_dead(graph, up.outputs[0])
    return True


@fires_on("Transpose")
def transpose_to_reshape(graph: Graph, node: Node) -> bool:
    """(Waits while a Transpose reads the output: composing with it comes first.)"""
    if node.op != "Transpose" or not keeps_memory_order(node.attrs.perm, graph.tensor(node.inputs[0]).shape):
        return False
    if any(c.op == "Transpose" for c in graph.consumers(node.outputs[0])):
        return False
    node.op, node.attrs = "Reshape", ReshapeAttrs(graph.tensor(node.outputs[0]).shape)
    return True


@fires_on("Reshape")
def merge_reshapes(graph: Graph, node: Node) -> bool:
    up = graph.producer(node.inputs[0]) if node.op == "Reshape" else None
    if up is None or up.op != "Reshape":
        return False
    graph.set_inputs(node, [up.inputs[0]])
    drop_if_dead(graph, up.outputs[0])
    return True


@fires_on("Reshape")
def remove_noop_reshape(graph: Graph, node: Node) -> bool:
    return (node.op == "Reshape" and graph.tensor(node.inputs[0]).shape == node.attrs.shape
            and bypass(graph, node, node.inputs[0]))


@fires_on("Transpose", "Reshape")
def merge_duplicates(graph: Graph, node: Node) -> bool:
    """Another Transpose/Reshape of the same tensor with the same attributes is
    replaced by this node (unless its output is a graph output)."""
    if node.op not in ("Transpose", "Reshape"):
        return False
    for other in graph.consumers(node.inputs[0]):
        if other.name != node.name and other.op == node.op and other.attrs == node.attrs \
                and bypass(graph, other, node.outputs[0]):
            return True
    return False


def acts_per_element(graph: Graph, node: Node, rank: int) -> bool:
    """True when `node` applies one scalar function to every element of its only
    run-time input, for that input at rank `rank` as well as at its current shape:
    per-tensor Quantize/DequantizeLinear, or an element-wise op whose constant
    operands are single values of rank <= `rank`."""
    data = data_inputs(graph, node)
    if len(data) != 1 or len(node.outputs) != 1:
        return False
    if graph.tensor(node.outputs[0]).shape != graph.tensor(node.inputs[data[0]]).shape:
        return False
    if node.op in QDQ_OPS:
        return node.attrs.axis is None
    consts = [graph.tensor(t) for i, t in enumerate(node.inputs) if t and i != data[0]]
    return get_op(node.op).elementwise and all(c.size == 1 and len(c.shape) <= rank for c in consts)


@fires_on("Reshape")
def reshape_through_unary(graph: Graph, node: Node) -> bool:
    """Reshape r1 -> u1 -> ... -> uk -> Reshape `node`, each u acting per element
    and read only by the next: the u run on r1's input, and r1 goes."""
    if node.op != "Reshape":
        return False
    chain, current = [], node.inputs[0]
    while True:
        up = graph.producer(current)
        if up is None or not single_use(graph, current):
            return False
        if up.op == "Reshape":
            break
        if not acts_per_element(graph, up, len(graph.tensor(current).shape)):
            return False
        chain.append(up)
        current = up.inputs[data_inputs(graph, up)[0]]
    source = graph.tensor(up.inputs[0])
    if not chain or not all(acts_per_element(graph, u, len(source.shape)) for u in chain):
        return False
    if any((q := graph.tensor(u.outputs[0]).quant) is not None and q.axis is not None for u in chain):
        return False
    top = chain[-1]
    graph.set_inputs(top, [source.name if t == current else t for t in top.inputs])
    for u in chain:
        t = graph.tensor(u.outputs[0])
        graph.tensors[t.name] = dataclasses.replace(t, shape=source.shape, layout=source.layout)
    drop_if_dead(graph, current)
    return True


TRANSPOSE_CLEANUP: tuple[Rule, ...] = (remove_identity_transpose, compose_transposes, merge_duplicates,
                                       remove_noop_reshape, merge_reshapes)
# The rules in modules of their own, each imported when a graph has an op it fires on.
CANONICAL_RULES: tuple[Rule, ...] = TRANSPOSE_CLEANUP + (
    transpose_to_reshape, reshape_through_unary,
    Deferred("split_to_slices", "split_to_slices", "Split"),
    Deferred("fuse_gelu", "fuse_gelu", "Mul"),
    Deferred("fuse_silu", "fuse_silu", "Mul"),
    Deferred("fold_gemm_scale", "fold_gemm_scale", "Mul"),
    Deferred("fuse_softmax_mask", "fuse_softmax_mask", "Softmax"),
    Deferred("fuse_softmax_scale", "fuse_softmax_scale", "Softmax", "LogSoftmax"),
    Deferred("instance_norm", "instance_norm_to_layer_norm", "InstanceNormalization"),
    Deferred("gather_nd", "gather_nd_to_gather", "GatherND"),
    Deferred("depth_space", "depth_space_to_transpose", "DepthToSpace", "SpaceToDepth"),
    Deferred("fuse_softplus", "fuse_softplus_threshold", "Where"),
    Deferred("fuse_softsign", "fuse_softsign", "Div"),
    Deferred("norm_reductions", "norm_reduction_to_sum", "ReduceL1", "ReduceL2", "ReduceSumSquare"),
    Deferred("einsum", "einsum_to_matmul", "Einsum"),
    Deferred("cumsum", "cumsum_to_matmul", "CumSum"),
    Deferred("matmul_vector", "vector_operand_to_matrix", "MatMul"),
    Deferred("fuse_where_activation", "where_to_activation", "Where"),
)
