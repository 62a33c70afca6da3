"""Lowering a compiled graph into a C program: everything the templates print,
decided here in Python.

Steps, in order:
1. Fold: a node whose inputs are all constants (e.g. DequantizeLinear of int8
   weights in a float graph) is evaluated now with the op's reference semantics;
   its outputs become constants in flash.
2. Schedule: the remaining nodes in the graph's deterministic topological order;
   step k is the k-th of them.
3. Storage, then lower: each node's handler (ops_*.py, imported for the ops
   the graph has: HANDLER_MODULES) turns it into C statements, registering
   the constant arrays, per-layer parameter structs and kernel instances it
   needs. An op without a handler, or a case a handler refuses, is collected;
   all of them are reported in one UnsupportedError.
Before step 3, storage (`storage.py`) decides where every run-time tensor lives
and names its pointer; it needs only the handlers' declarations (view, in place).
With packed weights (`pack` given, `--c-weights packed`), `ops_packed.plan`
first encodes every QConv/QGemm weight tensor and sizes the arena scratch its
kernel decodes into (storage places that scratch too); such a step is then
lowered by its `@lowers_packed` handler.
"""

from __future__ import annotations

from dataclasses import field
from typing import Callable

import importlib

import numpy as np

from nnc.errors import UnsupportedError
from nnc.ir import Graph, Node
from nnc.ops import get_op
from nnc.ops.softmax import keep_pattern

from . import cformat
from .library import C_TYPES, KernelSet
from .storage import Storage, plan_storage
from nnc.records import record


class Refused(Exception):
    """A handler cannot lower this node (the message says why)."""


@record
class Handler:
    fn: Callable
    in_place: tuple[int, ...] = ()  # inputs whose storage the output may take over
    view: bool = False  # the output is its input's bytes (no code)
    scratch: Callable | None = None  # (graph, node) -> arena scratch bytes the step needs


HANDLERS: dict[str, Handler] = {}
PACKED_HANDLERS: dict[str, Callable] = {}  # the lowering of a step whose weights stay packed

# The module (of this package) whose handlers lower each IR op; `lower` imports
# those of the graph's ops. tests/backends/c/test_c_handlers.py checks that the
# modules register exactly these ops. (ops_packed: PACKED_HANDLERS, for `pack`.)
HANDLER_MODULES: dict[str, str] = {
    "ops_data": "Reshape Identity Dropout Transpose Pad Concat",
    "ops_index": "Slice Split Expand Tile Gather Cast",
    "ops_float": "Conv Gemm MatMul Add Sub Mul Div PRelu Relu Clip LeakyRelu ThresholdedRelu Elu Selu Sigmoid Tanh "
                 "HardSigmoid HardSwish Softmax LogSoftmax BatchNormalization MaxPool GlobalMaxPool AveragePool "
                 "GlobalAveragePool",
    "ops_int": "QConv QGemm Requantize QAdd QLut QAveragePool QSoftmax QLogSoftmax QuantizeLinear DequantizeLinear",
    "ops_transformer": "QReduce QMatMul QLayerNorm ReduceSum ReduceMean ReduceMax LayerNormalization",
    "ops_resize": "ResizeNearest Resize QResize",
    "ops_elementwise": "Erf Sqrt Exp Log Neg Abs Reciprocal Sign Sin Cos Silu Softplus Softsign Mish Gelu Pow QMul "
                       "QAffine",
    "ops_recurrent": "QLSTM QGRU QRNN LSTM GRU RNN",
}
_HANDLER_MODULE = {op: module for module, ops in HANDLER_MODULES.items() for op in ops.split()}


def import_handlers(ops) -> None:
    """Register the handlers of the IR ops `ops` (importing their modules)."""
    for module in sorted({_HANDLER_MODULE[op] for op in ops if op not in HANDLERS and op in _HANDLER_MODULE}):
        importlib.import_module(f"{__package__}.{module}")


def lowers(*ops: str, in_place: tuple[int, ...] = (), view: bool = False, scratch: Callable | None = None):
    """Register the decorated function as the C lowering of the named IR ops;
    `scratch(program, node)` sizes the arena scratch a step needs (Ctx.scratch)."""

    def decorate(fn):
        for op in ops:
            HANDLERS[op] = Handler(fn, in_place, view, scratch)
        return fn

    return decorate


def lowers_packed(*ops: str):
    """Register the decorated function as the C lowering of the named ops when
    their weights stay packed (the step has an `ops_packed.PackedLayer`)."""

    def decorate(fn):
        PACKED_HANDLERS.update({op: fn for op in ops})
        return fn

    return decorate


@record(frozen=False)
class ConstArray:
    ident: str
    ctype: str
    dtype: str
    values: np.ndarray
    note: str

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


@record(frozen=False)
class Struct:
    ident: str
    ctype: str
    fields: list[tuple[str, str]]


@record(frozen=False)
class Step:
    index: int
    node: Node
    lines: list[str]
    note: str  # "Conv f32[1,49,10,1] -> f32[1,25,5,64]"


@record(frozen=False)
class Program:
    graph: Graph
    prefix: str
    consts: dict[str, np.ndarray]  # folded and original constants by tensor name
    steps: list[Step] = field(default_factory=list)
    arrays: list[ConstArray] = field(default_factory=list)
    structs: list[Struct] = field(default_factory=list)
    kernels: KernelSet = field(default_factory=KernelSet)
    idents: dict[str, str] = field(default_factory=dict)  # run-time tensor -> C identifier
    used: set[str] = field(default_factory=set)  # run-time tensors some statement reads or writes
    storage: Storage | None = None
    final_copies: list[str] = field(default_factory=list)
    packed: dict = field(default_factory=dict)  # step -> ops_packed.PackedLayer (packed weights only)
    weights: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # layer -> (format, bits, bytes)
    fast_plans: dict = field(default_factory=dict)  # node name -> its qfast.plan (scratch sizing, then lowering)

    def ctype(self, tensor: str) -> str:
        return C_TYPES[self.graph.tensor(tensor).dtype]


class Ctx:
    """What a handler sees while lowering one node."""

    def __init__(self, program: Program, step: int, node: Node, names: cformat.Names,
                 shared: dict[tuple, str]):
        self.program, self.step, self.node = program, step, node
        self._names, self._shared = names, shared

    # -- tensors -----------------------------------------------------------
    def tensor(self, name: str):
        return self.program.graph.tensor(name)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.program.graph.tensor(name).shape

    def dtype(self, name: str) -> str:
        return self.program.graph.tensor(name).dtype

    def ctype(self, name: str) -> str:
        return C_TYPES[self.dtype(name)]

    def ctype_of(self, dtype: str) -> str:
        return C_TYPES[dtype]

    def is_const(self, name: str) -> bool:
        return name in self.program.consts

    def data(self, name: str) -> np.ndarray:
        if name not in self.program.consts:
            raise Refused(f"input {name!r} must be a constant")
        return self.program.consts[name]

    def ptr(self, name: str, role: str = "c") -> str:
        """The C expression of tensor `name`'s data: its pointer variable, its
        constant array (named after `role`), or NULL for an omitted input."""
        if not name:
            return "NULL"
        if name in self.program.consts:
            return self.const(name, role)
        self.program.used.add(name)
        return self.program.idents[name]

    def const(self, name: str, role: str) -> str:
        """The flash array of constant tensor `name` as it is (shared by all users)."""
        return self.array(role, self.data(name), self.dtype(name), f"constant {name}", key=("raw", name))

    def keep_bits(self, name: str, shape: tuple[int, ...]) -> tuple[str, int]:
        """(flash array, period) of Softmax's keep mask `name` over a tensor of
        `shape`: element e is kept when bit e % period is set (bit b at byte
        b >> 3, bit b & 7; nnc.ops.softmax.keep_pattern)."""
        pattern = keep_pattern(self.data(name), shape)
        bits = np.packbits(pattern, bitorder="little")
        return self.array("keep", bits, "u8", f"keep mask {name}, {pattern.size} bits"), pattern.size

    # -- emitted data ----------------------------------------------------------
    def array(self, role: str, values, dtype: str, note: str, key: tuple | None = None) -> str:
        """A `static const` array in flash; `key` shares one array among users."""
        if key is not None and key in self._shared:
            return self._shared[key]
        values = np.ascontiguousarray(values, dtype=np.dtype(_NUMPY[dtype]))
        ident = self._names.take(f"L{self.step}_{role}")
        self.program.arrays.append(ConstArray(ident, C_TYPES[dtype], dtype, values, note))
        if key is not None:
            self._shared[key] = ident
        return ident

    def struct(self, role: str, ctype: str, fields: dict) -> str:
        """A per-layer `static const` parameter struct; returns `&ident`."""
        ident = self._names.take(f"L{self.step}_{role}")
        self.program.structs.append(Struct(ident, ctype, [(k, str(v)) for k, v in fields.items()]))
        return "&" + ident

    def scratch(self) -> str:
        """The pointer variable of this step's arena scratch (storage sized it)."""
        return self.program.storage.scratch[self.step]

    @property
    def packed(self):
        """This step's packed weights (an ops_packed.PackedLayer), or None."""
        return self.program.packed.get(self.step)

    def record_weights(self, fmt: str, bits: int, nbytes: int) -> None:
        """Report the node's weight encoding: (format, bits, stored bytes)."""
        self.program.weights[self.node.name] = (fmt, bits, nbytes)

    def ident(self, name: str) -> str:
        """The pointer variable of a run-time tensor, for comments (not marked used)."""
        return self.program.idents[name]

    def kernel(self, family: str, fn: str | None = None, **params) -> str:
        return self.program.kernels.use(family, fn, **params)


_NUMPY = {"f32": "float32", "f64": "float64", "i8": "int8", "u8": "uint8", "i16": "int16",
          "i32": "int32", "i64": "int64", "bool": "uint8", "u16": "uint16", "u32": "uint32"}


def fold_constants(graph: Graph) -> tuple[dict[str, np.ndarray], list[Node]]:
    """Constants (original and folded) and the nodes left to run."""
    consts = {name: t.data for name, t in graph.tensors.items() if t.is_constant}
    schedule = []
    for node in graph.nodes():
        if node.inputs and all(not t or t in consts for t in node.inputs):
            values = get_op(node.op).evaluate(node.attrs, [consts[t] if t else None for t in node.inputs])
            consts.update({name: v for name, v in zip(node.outputs, values) if name})
        else:
            schedule.append(node)
    return consts, schedule


def lower(graph: Graph, prefix: str, pack: str | None = None) -> Program:
    """The C program of `graph` (see the module docstring); UnsupportedError
    lists every node the C target cannot lower. `pack`: None keeps weights as
    int8 arrays; "auto" or a format name keeps QConv/QGemm weights packed."""
    consts, schedule = fold_constants(graph)
    import_handlers({node.op for node in schedule})
    program = Program(graph, prefix, consts)
    if pack is not None:
        from . import ops_packed

        program.packed = ops_packed.plan(program, schedule, pack)
    names = cformat.Names(reserved={"arena", "NULL", "status"})
    program.storage = plan_storage(graph, consts, schedule, HANDLERS, names, _scratch(program, schedule))
    program.idents = program.storage.idents
    shared: dict[tuple, str] = {}
    problems = []
    for step, node in enumerate(schedule):
        handler = HANDLERS.get(node.op)
        if handler is None:
            problems.append(f"{node.op} node {node.name!r}: no C kernel for {node.op}")
            continue
        fn = PACKED_HANDLERS[node.op] if step in program.packed and program.packed[step].family else handler.fn
        try:
            lines = fn(Ctx(program, step, node, names, shared), node)
        except Refused as exc:
            problems.append(f"{node.op} node {node.name!r}: {exc}")
            continue
        program.steps.append(Step(step, node, lines, _note(graph, node)))
    if problems:
        raise UnsupportedError(f"the C target cannot compile {len(problems)} node(s):\n  "
                               + "\n  ".join(problems))
    program.final_copies = _final_copies(program, Ctx(program, len(schedule), None, names, shared))
    return program


def _scratch(program: Program, schedule: list[Node]) -> dict[int, int]:
    """Arena scratch bytes per step: a packed layer's decoding scratch, else what
    its handler asks for; steps that need none are left out."""
    sizes = {}
    for step, node in enumerate(schedule):
        layer, handler = program.packed.get(step), HANDLERS.get(node.op)
        if layer is not None and layer.family:
            sizes[step] = layer.scratch
        elif handler is not None and handler.scratch:
            sizes[step] = handler.scratch(program, node)
    return {step: size for step, size in sizes.items() if size}


def _final_copies(program: Program, ctx: Ctx) -> list[str]:
    """memcpy statements filling the output positions that are not their group's home."""
    lines = []
    for pos, name in program.storage.copies:
        nbytes = program.graph.tensor(name).nbytes
        lines.append(f"memcpy({program.storage.out_params[pos]}, {ctx.ptr(name)}, {nbytes});")
    return lines


def _note(graph: Graph, node: Node) -> str:
    def typ(name: str) -> str:
        t = graph.tensor(name)
        return f"{t.dtype}[{','.join(map(str, t.shape))}]"

    ins = ", ".join(typ(t) for t in node.inputs if t and graph.tensor(t).data is None)
    return f"{node.op} {ins} -> {', '.join(typ(t) for t in node.outputs if t)}"
