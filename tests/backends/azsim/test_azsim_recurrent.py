"""QLSTM, QGRU and QRNN on az-sim: quantized one-node models lowered to a blob,
read back and simulated, bit-exact with the reference interpreter
(docs/numerics.md §15), with the work the cost model counts (docs/azsim.md):
the gate matrix-vector products as MACs, the gates as PPU elements."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rnn_models import Spec, integer_graph, model, samples, split_samples

from nnc.backends.azsim.blob import read_blob, write_blob
from nnc.backends.azsim.hardware import load_hardware
from nnc.backends.azsim.lowering import to_program
from nnc.backends.azsim.simulator import simulate
from nnc.interpreter import run

CASES = {
    "lstm-bidirectional-layout1-input-states": (Spec("LSTM", steps=6, batch=2, inputs=5, hidden=7,
                                                     direction="bidirectional", layout=1, states="input",
                                                         outputs=("Y", "Y_h", "Y_c")), 7),
    "lstm-reverse-const-states-clip": (Spec("LSTM", steps=6, batch=3, inputs=4, hidden=5, direction="reverse",
                                            states="const", attrs={"clip": 1.5}, outputs=("Y_h",)), 7),
    "gru-bidirectional-input-states": (Spec("GRU", steps=6, batch=2, inputs=5, hidden=6, direction="bidirectional",
                                            states="input"), 6),
    "gru-linear-before-reset-layout1": (Spec("GRU", steps=6, batch=2, inputs=5, hidden=6, layout=1, states="const",
                                             attrs={"linear_before_reset": 1}), 6),
    "rnn-reverse-layout1": (Spec("RNN", steps=6, batch=2, inputs=5, hidden=6, direction="reverse", layout=1,
                                 states="input"), 2),
}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@pytest.mark.parametrize("spec,ppu_per_unit", CASES.values(), ids=CASES.keys())
def test_recurrent_ops(spec, ppu_per_unit, tmp_path):
    m = model(spec)
    stacked = {k: v * (1.0 if k == "X" else 0.4) for k, v in samples(m, 3).items()}
    _, graph = integer_graph(m, tmp_path, stacked)
    program = read_blob(write_blob(to_program(graph)))
    for sample in split_samples(stacked):
        produced, stats = simulate(program, sample)
        for name, want in run(graph, sample).items():
            np.testing.assert_array_equal(produced[name], want, err_msg=name)
    units = spec.steps * spec.batch * spec.directions * spec.hidden
    (row,) = [row for row in stats.layers if row.op == "Q" + spec.op]
    assert row.macs_total == units * GATES[spec.op] * (spec.inputs + spec.hidden)
    assert row.post_cycles == math.ceil(units * ppu_per_unit * load_hardware().post_cycles_per_output)


def test_recurrent_weights_must_fit_weight_sram(tmp_path):
    """w and r are read at every time step, so they must sit in weight SRAM
    together: a machine with less is refused when compiling for it and when a
    blob compiled elsewhere is run on it (it simulated untiled on any machine)."""
    from azsim_testing import machine

    from nnc.backends.azsim.simulator import Simulator
    from nnc.errors import UnsupportedError

    spec = Spec("LSTM", steps=3, batch=1, inputs=5, hidden=6)
    m = model(spec)
    _, graph = integer_graph(m, tmp_path, samples(m, 2))
    held = sum(graph.tensor(n.inputs[k]).nbytes for n in graph.nodes() if n.op == "QLSTM" for k in (1, 2))
    assert held == 4 * 6 * (5 + 6)
    with pytest.raises(UnsupportedError, match=rf"\(QLSTM\): its weights w and r take {held} bytes.*{held - 1}-byte"):
        to_program(graph, hw=machine(weight_sram_bytes=held - 1))
    program = read_blob(write_blob(to_program(graph)))
    with pytest.raises(UnsupportedError, match=rf"its weights w and r take {held} bytes"):
        Simulator(program, machine(weight_sram_bytes=held - 1))
    to_program(graph, hw=machine(weight_sram_bytes=held))
    Simulator(program, machine(weight_sram_bytes=held))


def test_recurrent_weights_past_the_machine_name_hw_in_the_api_and_the_flag_on_the_command_line(tmp_path, capsys):
    """The hint to choose another machine passes through the compile's 'target
    az-sim: ' in both wordings."""
    import onnx

    import nnc
    from nnc.cli import run_cli

    onnx.save(model(Spec("LSTM", steps=2, batch=1, inputs=5, hidden=100)), tmp_path / "lstm.onnx")
    said = ("target az-sim: layer 'rnn' (QLSTM): its weights w and r take 42000 bytes, more than the 32768-byte "
            "weight SRAM of 'az-small'; az-sim keeps a recurrent layer's weights on chip for all its time steps and "
            "does not stream them (a smaller hidden size, or a machine with more weight SRAM")
    with pytest.raises(nnc.UnsupportedError) as caught:
        nnc.compile(tmp_path / "lstm.onnx", "az-sim", hw="small", verify=False)
    assert str(caught.value) == f"{said} given as hw)"
    code = run_cli(["compile", str(tmp_path / "lstm.onnx"), "-t", "az-sim", "--hw", "small", "-o", str(tmp_path / "o")])
    assert code == 2 and capsys.readouterr().err.splitlines() == [f"nnc: error: {said}, --hw)"]
