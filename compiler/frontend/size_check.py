"""Size limits on the values of a model, checked before anything allocates them.

- `check_values(model)` runs after input shapes are bound and after every shape
  inference: each value whose shape ONNX knows statically (graph inputs,
  initializers, value_info, graph outputs) must pass `check_elements`
  (MAX_TENSOR_ELEMENTS, MAX_RANK), and together, each counted once, they must
  stay within MAX_MODEL_ELEMENTS (compiler/limits.py, docs/limits.md).
- `propagation_affordable(shapes)`: whether ONNX's data propagation, which
  spends memory on every element of a 1-D value, stays cheap: the static 1-D
  values (`checked_shapes`) hold at most MAX_PROPAGATED_ELEMENTS together. The
  front end infers shapes without data propagation first, checks them, and
  propagates only then.
- Shape folding checks each node's outputs before evaluating it
  (shape_folding.py), and the lowering checks every shape nnc's own inference
  gives (onnx_loader.py).

Together these make every tensor that the front end, the passes and the
interpreter allocate one whose size passed a check first. A shape with a
symbolic or unknown dim is not checked here; the lowering sees it static.
"""

from __future__ import annotations

from functools import partial

from ..errors import ShapeError
from ..limits import MAX_MODEL_ELEMENTS, MAX_PROPAGATED_ELEMENTS, check_elements
from .shape_folding import static_shapes


def check_values(model):
    """`model`, unchanged, once every static value shape in its graph is within
    the limits (see the module docstring); ShapeError naming the value and its
    producer otherwise."""
    checked_shapes(model)
    return model


def checked_shapes(model) -> dict[str, tuple[int, ...]]:
    """static_shapes of the graph of `model`, once they pass `check_values`."""
    graph = model.graph
    shapes = static_shapes(graph)
    total = 0
    for name, shape in shapes.items():
        total += check_elements(shape, partial(_describe, graph, name))
    if total > MAX_MODEL_ELEMENTS:
        raise ShapeError(f"the model's {len(shapes)} values hold {total:,} elements together, past nnc's limit "
                         f"of {MAX_MODEL_ELEMENTS:,} per model (docs/limits.md)")
    return shapes


def propagation_affordable(shapes: dict[str, tuple[int, ...]]) -> bool:
    """True if the static 1-D values among `shapes` (a model's checked_shapes)
    hold at most MAX_PROPAGATED_ELEMENTS elements together (see the module docstring)."""
    lengths = [shape[0] for shape in shapes.values() if len(shape) == 1]
    return sum(lengths) <= MAX_PROPAGATED_ELEMENTS


def _describe(graph, name: str) -> str:
    """Value `name` of `graph` and its producer, as an error names them."""
    producer = next((node for node in graph.node if name in node.output), None)
    if producer is None:
        return f"{'input' if any(value.name == name for value in graph.input) else 'tensor'} {name!r}"
    node = f"{producer.op_type} node {producer.name!r}" if producer.name else f"an unnamed {producer.op_type} node"
    return f"tensor {name!r} (output of {node})"

