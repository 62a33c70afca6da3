"""QMul, QAffine and QAdd with a negative multiplier on az-sim: a hand-built
graph lowered to a blob, read back and simulated, bit-exact with the reference
interpreter over every 8-bit input value; each counts one PPU element per
output element (docs/azsim.md)."""

from __future__ import annotations

import numpy as np
from elementwise_graphs import corner_graph, corner_samples

from nnc.backends.azsim.blob import read_blob, write_blob
from nnc.backends.azsim.lowering import to_program
from nnc.backends.azsim.simulator import simulate
from nnc.interpreter import run


def test_integer_elementwise_corners_bit_exact():
    graph = corner_graph()
    program = read_blob(write_blob(to_program(graph)))
    assert {layer.op for layer in program.layers} >= {"QMul", "QAffine", "QAdd"}
    for sample in corner_samples():
        out, stats = simulate(program, sample)
        want = run(graph, sample)
        for name in graph.outputs:
            np.testing.assert_array_equal(out[name], want[name], err_msg=name)
    assert stats.macs_total == 0
    assert stats.post_cycles > 0
