"""Channel cuts and the graph edits that carry them out, shared by prune-channels'
layer kinds (prune_channels.py; recurrent layers: prune_recurrent.py).

A `Cut` names the channels removed from one tensor and the constant each
carries; an `Edit` is a function applied to the graph once a plan is complete.
Parameters are constants or a DequantizeLinear of constants (`is_param`);
edits rewrite a parameter in place when only its reader reads it, else a copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from nnc import dtypes
from nnc.ir import Graph, Node, Tensor, TensorType
from nnc.ops import get_op
from nnc.records import record

from .graph_edits import drop_if_dead

Edit = Callable[[Graph], None]


@record(frozen=False)
class Cut:
    """Channels removed from one tensor: sorted indices `removed` along `axis` of a
    tensor with `size` entries there, and the constant value (tensor dtype) each of
    them carries."""

    axis: int
    size: int
    removed: np.ndarray
    values: np.ndarray

    @property
    def keep(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.size), self.removed)


def is_param(graph: Graph, name: str) -> bool:
    """A constant, or a DequantizeLinear of constants."""
    if graph.tensor(name).is_constant:
        return True
    dq = graph.producer(name)
    return dq is not None and dq.op == "DequantizeLinear" and all(graph.constant(t) is not None
                                                                    for t in dq.inputs if t)


def param_values(graph: Graph, name: str) -> np.ndarray:
    """The float64 value of a parameter: a constant or a DequantizeLinear of constants."""
    tensor = graph.tensor(name)
    if tensor.is_constant:
        return f64(tensor.data)
    dq = graph.producer(name)
    return f64(get_op("DequantizeLinear").evaluate(dq.attrs, [graph.constant(t) for t in dq.inputs if t])[0])


def f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# -- edits ------------------------------------------------------------------------------
def reinfer_edit(node_name: str, cut: Cut | None) -> Edit:
    """Give the node's outputs the shapes its shape inference now gives (`cut`:
    the one of its first output, whose per-channel quantization it trims)."""

    def edit(graph: Graph) -> None:
        node = graph.node(node_name)
        types = [TensorType(graph.tensor(t).dtype, graph.tensor(t).shape) if t else None for t in node.inputs]
        for i, (name, inferred) in enumerate(zip(node.outputs, get_op(node.op).infer(node.attrs, types))):
            if name:
                graph.tensors[name] = _resized(graph.tensor(name), inferred.shape, cut if i == 0 else None)

    return edit


def _resized(tensor: Tensor, shape: tuple[int, ...], cut: Cut | None) -> Tensor:
    quant = tensor.quant
    if quant is not None and quant.axis is not None and cut is not None and quant.axis == cut.axis:
        keep = cut.keep
        quant = dataclasses.replace(quant, scale=tuple(np.take(quant.scale, keep)),
                                    zero_point=tuple(np.take(quant.zero_point, keep)))
    return dataclasses.replace(tensor, shape=shape, quant=quant)


def attrs_edit(node_name: str, **changes) -> Edit:
    def edit(graph: Graph) -> None:
        node = graph.node(node_name)
        node.attrs = dataclasses.replace(node.attrs, **changes)

    return edit


def slice_edit(node_name: str, index: int, axis: int, keep: np.ndarray) -> Edit:
    """Keep only indices `keep` along `axis` of the node's parameter input `index`
    (and of a DequantizeLinear's scale and zero point when they run along it)."""

    def edit(graph: Graph) -> None:
        _rewrite_param(graph, graph.node(node_name), index, lambda data, scale: np.take(data, keep, axis=axis),
                       lambda dq: (lambda p: np.take(p, keep, axis=0)) if dq.attrs.axis == axis else None)

    return edit


def bias_edit(node_name: str, contribution: np.ndarray, index: int = 2) -> Edit:
    """Add `contribution` to the node's bias (input `index`), creating one if it has none."""

    def add(data: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
        if scale is None:
            return (f64(data) + contribution).astype(data.dtype)
        info = np.iinfo(data.dtype)
        return np.clip(f64(data) + np.rint(contribution / scale), info.min, info.max).astype(data.dtype)

    def edit(graph: Graph) -> None:
        node = graph.node(node_name)
        if len(node.inputs) <= index or not node.inputs[index]:
            dtype = dtypes.to_numpy(graph.tensor(node.outputs[0]).dtype)
            bias = graph.add_constant(f"{node.name}.bias", contribution.astype(dtype))
            inputs = [*node.inputs, *[""] * (index + 1 - len(node.inputs))]
            graph.set_inputs(node, [bias.name if i == index else t for i, t in enumerate(inputs)])
            return
        _rewrite_param(graph, node, index, add, lambda dq: None)

    return edit


def _rewrite_param(graph: Graph, node: Node, index: int, data_fn, params_fn) -> None:
    """Make input `index` of `node` a parameter whose stored data is data_fn(old data,
    scale) — scale None for a float constant, else the DequantizeLinear's scale shaped
    to broadcast — and, behind a DequantizeLinear, whose scale and zero point are
    params_fn(dq) applied to the old ones (params_fn(dq) None: unchanged). Tensors
    only `node` reads are rewritten in place; shared ones are copied."""
    old = node.inputs[index]
    tensor = graph.tensor(old)
    alone = graph.uses(old) == 1
    if tensor.is_constant:
        new = _store(graph, old, data_fn(tensor.data, None), alone)
    else:
        new = _rewrite_dequantize(graph, graph.producer(old), data_fn, params_fn, alone)
    if new != old:
        graph.set_inputs(node, [new if i == index else t for i, t in enumerate(node.inputs)])
        drop_if_dead(graph, old)


def _rewrite_dequantize(graph: Graph, dq: Node, data_fn, params_fn, alone: bool) -> str:
    q = graph.constant(dq.inputs[0])
    scale = graph.constant(dq.inputs[1])
    shaped = scale.reshape(-1)[0] if dq.attrs.axis is None else \
        scale.reshape([-1 if a == dq.attrs.axis else 1 for a in range(q.ndim)])
    inputs = [_store(graph, dq.inputs[0], data_fn(q, f64(shaped)), alone and graph.uses(dq.inputs[0]) == 1)]
    fn = params_fn(dq)
    for p in dq.inputs[1:]:
        unchanged = fn is None or not p
        inputs.append(p if unchanged else _store(graph, p, fn(graph.constant(p)), alone and graph.uses(p) == 1))
    out = graph.tensor(dq.outputs[0])
    shape = graph.tensor(inputs[0]).shape
    if alone:
        old_inputs = list(dq.inputs)
        graph.set_inputs(dq, inputs)
        graph.tensors[out.name] = dataclasses.replace(out, shape=shape)
        for t in old_inputs:
            drop_if_dead(graph, t)
        return out.name
    new_out = graph.add_tensor(Tensor(graph.unique_tensor_name(f"{out.name}.pruned"), out.dtype, shape))
    graph.add_node(Node(graph.unique_node_name(f"{dq.name}.pruned"), "DequantizeLinear", inputs,
                        [new_out.name], dq.attrs))
    return new_out.name


def _store(graph: Graph, name: str, data: np.ndarray, alone: bool) -> str:
    """A constant holding `data`: `name` rewritten when only the caller reads it, else a new one."""
    tensor = graph.tensor(name)
    if alone:
        graph.tensors[name] = dataclasses.replace(tensor, data=data, shape=data.shape)
        return name
    return graph.add_constant(f"{name}.pruned", data.astype(tensor.data.dtype)).name
