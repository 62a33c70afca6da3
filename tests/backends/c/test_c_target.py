"""The C target as a whole: files and API, storage (in place, views, copies at
the interface), integer networks end to end, linking two models, names from
the wild, the driver's report and determinism, build failures."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from c_testing import COMPILERS, SANITIZE, WERROR, GraphBuilder, build_harness, check_graph, emit

import nnc
from nnc.backends.c import build
from nnc.backends.c.lowering import lower
from nnc.backends.c.target import CTarget
from nnc.errors import VerificationError
from nnc.memory_plan import check
from nnc.numerics import quantize_multiplier, quantize_multipliers
from nnc.ops.conv import ConvAttrs
from nnc.ops.elementwise import ClipAttrs
from nnc.ops.qelementwise import QAddAttrs
from nnc.ops.qlinear import QConvAttrs, QGemmAttrs
from nnc.ops.qpool import QAveragePoolAttrs
from nnc.ops.qsoftmax import EXP_BITS, QSoftmaxAttrs
from nnc.ops.shape import ReshapeAttrs

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "01-tiny-cnn"
RNG = np.random.default_rng(3)


def float_net(name: str = "net") -> nnc.Graph:
    """Conv -> Relu (in place) -> Reshape (view) -> Gemm, plus interface cases: an
    output also read inside, an input copied to an output through a view."""
    b = GraphBuilder(name)
    x = b.input("x", "f32", (1, 4, 4, 2), layout="NHWC")
    w = b.const("w", RNG.standard_normal((3, 2, 3, 3)).astype(np.float32))
    c = b.op("Conv", [x, w, ""], ConvAttrs((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True), name="conv/1;a:b")
    r = b.op("Relu", [c])
    f = b.op("Reshape", [r], ReshapeAttrs((1, 48)))
    g = b.op("Gemm", [f, b.const("fc", RNG.standard_normal((48, 5)).astype(np.float32)), ""])
    s = b.op("Softmax", [g], nnc.ops.softmax.SoftmaxAttrs(1))
    clipped = b.op("Clip", [g], ClipAttrs(-1.0, 1.0))
    flat_x = b.op("Reshape", [x], ReshapeAttrs((32,)))
    return b.output(s, g, clipped, flat_x, s)


def int_net(name: str = "qnet") -> nnc.Graph:
    """QConv -> depthwise QConv -> QAdd (residual) -> QAveragePool -> Reshape ->
    QGemm -> QSoftmax, int8 throughout."""
    b = GraphBuilder(name)
    x = b.input("x", "i8", (1, 6, 6, 4), layout="NHWC")

    def qconv(inp, cout, cin, group, relu):
        m, n = quantize_multipliers(RNG.uniform(1e-3, 4e-3, cout))
        attrs = QConvAttrs((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), group, True, 2, -3, -3 if relu else -128, 127)
        return b.op("QConv", [inp, b.const("w", RNG.integers(-127, 128, (cout, cin // group, 3, 3)).astype(np.int8)),
                              b.const("b", RNG.integers(-999, 999, cout).astype(np.int32)),
                              b.const("m", m), b.const("n", n)], attrs)

    c1 = qconv(x, 4, 4, 1, True)
    c2 = qconv(c1, 4, 4, 4, False)
    s = 30
    add = b.op("QAdd", [c1, c2], QAddAttrs(-3, -3, 1, round(0.6 * 2 ** s), round(0.8 * 2 ** s), s, -128, 127))
    m, n = quantize_multiplier(1 / 36)
    pool = b.op("QAveragePool", [add], QAveragePoolAttrs((6, 6), (1, 1), (0,) * 4, True, 1, 0, m, n, -128, 127))
    flat = b.op("Reshape", [pool], ReshapeAttrs((1, 4)))
    gm, gn = quantize_multipliers(np.full(10, 0.02))
    logits = b.op("QGemm", [flat, b.const("fc", RNG.integers(-127, 128, (10, 4)).astype(np.int8)), "",
                            b.const("gm", gm), b.const("gn", gn)], QGemmAttrs(0, 0, -128, 127))
    table = np.round(2.0 ** EXP_BITS * np.exp(-0.1 * np.arange(256))).astype(np.int32)
    sm, sn = quantize_multiplier(256.0)
    probs = b.op("QSoftmax", [logits, b.const("table", table)], QSoftmaxAttrs(-128, sm, sn, -128, 127))
    return b.output(probs)


def test_files_api_and_prefixed_symbols(tmp_path):
    graph = float_net("My-Net 2")
    files = CTarget().emit(graph, tmp_path, "my-net")
    assert sorted(files) == sorted(["my-net.h", "my-net.c", "my-net_kernels.h", "my-net_weights.h", "my-net_test.c",
                                    "my-net_golden.h", "Makefile", "my-net.cmake", "README.md", "firmware/main.c",
                                    "firmware/harness.h", "firmware/startup.c", "firmware/semihost.c",
                                    "firmware/mps2-an386.ld", "firmware/mps2-an500.ld", "firmware/mps3-an547.ld"])
    header = (tmp_path / "my-net.h").read_text()
    assert "int my_net_invoke(const float *in_x, float *out_softmax" in header
    assert "#define MY_NET_ARENA_BYTES" in header and "#define MY_NET_INPUT0_SHAPE {1, 4, 4, 2}" in header
    source = (tmp_path / "my-net.c").read_text()
    assert "malloc" not in source and "stdio" not in source and '"conv/1;a:b"' in source
    for cc in COMPILERS:
        obj = build.compile_c([tmp_path / "my-net.c"], tmp_path / f"lib_{cc}.o", WERROR, cc=cc, link=False)
        symbols = subprocess.run(["nm", "-g", "--defined-only", str(obj)], capture_output=True, text=True).stdout
        exported = [line.split()[-1] for line in symbols.splitlines() if line.strip()]
        assert exported == ["my_net_invoke", "my_net_invoke_with_arena"]


def test_interface_storage_cases_match_the_reference(tmp_path):
    """Outputs read inside the graph, repeated outputs, an input copied to an
    output through a view; in-place Relu; Reshape costs no copy."""
    graph = float_net()
    program = lower(graph, "net")
    storage = program.storage
    check(storage.buffers, storage.offsets, 16)
    relu = next(s for s in program.steps if s.node.op == "Relu")
    assert relu.lines[0].startswith("relu_f32(") and program.idents[relu.node.inputs[0]] in relu.lines[0]
    conv_out, relu_out = relu.node.inputs[0], relu.node.outputs[0]
    offsets = dict(zip((b.name for b in storage.buffers), storage.offsets))
    assert offsets[conv_out] == offsets[relu_out]  # Relu ran in place
    assert sorted(pos for pos, _ in storage.copies) == [3, 4]  # Reshape(x) and the repeated softmax
    check_graph(graph, tmp_path)


def test_constant_outputs_input_outputs_and_unused_inputs(tmp_path):
    b = GraphBuilder("edge")
    x = b.input("x", "f32", (2, 3))
    b.input("unused", "i8", (4,))
    c = b.const("c", np.arange(6, dtype=np.float32).reshape(2, 3))
    folded = b.op("Relu", [c])
    graph = b.output(b.op("Add", [x, c]), folded, x)
    check_graph(graph, tmp_path)
    source = (tmp_path / "src_gcc" / "edge.c").read_text()
    assert "memcpy(out_relu1, L1_c, 24);" in source and "memcpy(out_x, in_x, 24);" in source


def test_integer_network_is_bit_exact_and_harness_passes(tmp_path):
    graph = int_net()
    check_graph(graph, tmp_path)
    src, stem = emit(graph, tmp_path / "golden")
    exe = build_harness(src, stem, tmp_path / "golden_test")
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("PASS") and "max |diff| 0," in result.stdout
    for count in ("x", "3x", "-1", ""):  # strtol read these as 0, 3 or -1 samples
        bad = subprocess.run([str(exe), "--run", count, str(tmp_path / "in"), str(tmp_path / "out")],
                             capture_output=True, text=True)
        assert bad.returncode == 2 and "--run takes a sample count" in bad.stderr, count
        assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
def test_makefile_builds_library_and_runs_the_harness(tmp_path):
    src, stem = emit(int_net(), tmp_path / "out")
    result = subprocess.run(["make", "-C", str(src), "test", "CFLAGS=-std=c99 -O1 -Wall -Wextra -Werror -pedantic"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (src / f"lib{stem}.a").is_file() and "PASS" in result.stdout


@pytest.mark.skipif(not shutil.which("cmake"), reason="cmake is not installed")
def test_cmake_snippet_builds(tmp_path):
    src, stem = emit(int_net(), tmp_path / "model")
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.c").write_text('#include "qnet.h"\nint main(void) { static int8_t x[QNET_INPUT0_SIZE];\n'
                                    '  static int8_t y[QNET_OUTPUT0_SIZE]; return qnet_invoke(x, y); }\n')
    (project / "CMakeLists.txt").write_text(f"cmake_minimum_required(VERSION 3.13)\nproject(p C)\n"
                                            f"include({src.as_posix()}/{stem}.cmake)\n"
                                            "add_executable(app main.c)\ntarget_link_libraries(app PRIVATE qnet)\n")
    for args in (["-S", str(project), "-B", str(tmp_path / "b")], ["--build", str(tmp_path / "b")]):
        result = subprocess.run(["cmake", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    assert subprocess.run([str(tmp_path / "b" / "app")]).returncode == 0


def test_two_models_link_into_one_program(tmp_path):
    first, _ = emit(int_net("qnet"), tmp_path / "a", "qnet")
    second, _ = emit(float_net("net"), tmp_path / "b", "net")
    main = tmp_path / "main.c"
    main.write_text('#include "qnet.h"\n#include "net.h"\nint main(void) {\n'
                    '  static int8_t qx[QNET_INPUT0_SIZE], qy[QNET_OUTPUT0_SIZE];\n'
                    '  static float x[NET_INPUT0_SIZE], y0[NET_OUTPUT0_SIZE], y1[NET_OUTPUT1_SIZE],\n'
                    '    y2[NET_OUTPUT2_SIZE], y3[NET_OUTPUT3_SIZE], y4[NET_OUTPUT4_SIZE];\n'
                    '  return qnet_invoke(qx, qy) + net_invoke(x, y0, y1, y2, y3, y4);\n}\n')
    for cc in COMPILERS:
        exe = tmp_path / f"both_{cc}"
        command = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", *SANITIZE,
                   f"-I{first}", f"-I{second}", str(first / "qnet.c"), str(second / "net.c"), str(main),
                   "-o", str(exe), "-lm"]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert subprocess.run([str(exe)]).returncode == 0


def test_names_from_the_wild_compile_cleanly(tmp_path):
    weird = "model/*odd*/;" + "x" * 300 + ":0??/\n é"
    b = GraphBuilder("m/o;d:e*/l")
    x = b.input(weird, "f32", (2, 3))
    y = b.op("Relu", [x], name=weird)
    z = b.op("Sigmoid", [y], name="*/ closing")
    check_graph(b.output(z), tmp_path)
    source = next((tmp_path / "src_gcc").glob("*.c"))
    text = source.read_text()
    assert "relu_f32(6, in_model__odd, " in text  # a short identifier; the full name is in the comment
    assert "/ *odd* /;" + "x" * 300 + ":0? ?/\\n \\xe9" in text and "* / closing" in text


def test_compile_api_report_determinism_and_cli(tmp_path):
    model, sample = EXAMPLE / "tiny_cnn.onnx", EXAMPLE / "sample.npz"
    outs = []
    for i in range(2):
        out = tmp_path / f"out{i}"
        result = nnc.compile(model, target="c", output_dir=out, quantize=False, inputs=sample)
        outs.append(out)
    report = json.loads((outs[0] / "report.json").read_text())
    memory = report["memory"]
    assert memory["arena_lower_bound_bytes"] <= memory["arena_bytes"] <= memory["arena_naive_bytes"]
    assert memory["flash_bytes"] > 0 and report["verification"]["executed"]
    assert set(result.artifacts) == {p.relative_to(outs[1]).as_posix() for p in outs[1].rglob("*") if p.is_file()}
    for name in result.artifacts:
        if name not in ("report.json", "nnc-manifest.json"):  # wall times, and the manifest hashes them
            assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert "Pipeline: remove-identity" in (outs[0] / "tiny_cnn.c").read_text()
    golden = (outs[0] / "tiny_cnn_golden.h").read_text()
    assert "verification sample" in golden
    no_dir = nnc.compile(model, target="c", quantize=False, inputs=sample)
    assert no_dir.report["verification"]["executed"] and no_dir.report["memory"] == memory
    cli = subprocess.run(["nnc", "compile", str(model), "--target", "c", "--no-quantize", "-o", str(tmp_path / "cli"),
                          "--inputs", str(sample), "--quiet"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "cli" / "tiny_cnn.h").is_file()


def test_no_c_compiler_names_verify_in_the_api_and_the_flag_on_the_command_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(VerificationError) as caught:
        build.host_compiler()
    said = "no C compiler found (cc, gcc or clang) to build the generated C; install one or compile with"
    assert (str(caught.value), caught.value.cli) == (f"{said} verify=False", f"{said} --no-verify")


def test_build_failure_is_a_verification_error_naming_the_first_error(tmp_path):
    graph = int_net()
    src, stem = emit(graph, tmp_path / "src")
    source = src / f"{stem}.c"
    source.write_text(source.read_text().replace("return 0;\n}", "return undefined_symbol;\n}"))
    with pytest.raises(VerificationError, match=r"building the generated C failed: .*undefined_symbol"):
        CTarget().execute(graph, src, stem, [{"x": np.zeros((1, 6, 6, 4), np.int8)}])


@pytest.mark.skipif(not shutil.which("valgrind"), reason="valgrind is not installed")
def test_harness_is_clean_under_valgrind(tmp_path):
    src, stem = emit(int_net(), tmp_path / "src")
    exe = build_harness(src, stem, tmp_path / "plain", "gcc", ("-O1", "-g"))
    result = subprocess.run(["valgrind", "--error-exitcode=9", "--leak-check=full", "-q", str(exe)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _conv_model(path: Path, channels: int, pads_second: list[int] | None = None) -> np.ndarray:
    """Conv 1 -> `channels` (1x1) on [1, 1, 12, 1]; with `pads_second`, a second
    1x1 single-channel Conv padded so."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a" if pads_second else "y"], kernel_shape=[1, 1])]
    inits = [numpy_helper.from_array(rng.standard_normal((channels, 1, 1, 1)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b1")]
    out_h = 12
    if pads_second:
        nodes.append(helper.make_node("Conv", ["a", "w2", "b2"], ["y"], kernel_shape=[1, 1], pads=pads_second))
        inits += [numpy_helper.from_array(np.full((1, 1, 1, 1), -1.3, np.float32), "w2"),
                  numpy_helper.from_array(np.full(1, 0.2, np.float32), "b2")]
        out_h += pads_second[0] + pads_second[2]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 12, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, out_h, 1])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return rng.standard_normal((8, 1, 1, 12, 1)).astype(np.float32)


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
@pytest.mark.parametrize("case", ["packed 33 channels", "padded single-channel taps"])
def test_gcc_builds_constant_propagated_kernels_without_warnings(tmp_path, case):
    """GCC specializes a kernel to one call's constant sizes and then warned
    about channel blocks that cannot run (33 channels: 2 x 16 + 1) and about
    tap pointers it could not see set; the firmware Makefile builds with -Werror."""
    model = tmp_path / "m.onnx"
    if case == "packed 33 channels":
        calib = _conv_model(model, 33)
        options = {"weight_bits": 4, "c_weights": "packed"}
    else:
        calib = _conv_model(model, 1, pads_second=[1, 0, 1, 0])
        options = {}
    nnc.compile(model, "c", tmp_path / "out", calib={"x": calib}, verify=False, **options)
    for level in ("-O1", "-O2", "-O3", "-Os"):
        build.compile_c([tmp_path / "out" / "m.c"], tmp_path / "m.o", (level, "-Werror"), cc="gcc", link=False)


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
@pytest.mark.parametrize("flags", [("-O3",), ("-O2", "-DQARM_PORTABLE_SHIFTS")])
def test_example_golden_test_passes_at_o3_and_with_the_portable_shifts(tmp_path, flags):
    """GCC 12.2 at -O3 vectorized the unsigned-offset requantization of the
    average pool wrongly; GCC builds use arithmetic shifts now, and the
    portable form (for other compilers) still matches the reference."""
    example = Path(__file__).resolve().parents[3] / "examples" / "01-tiny-cnn" / "tiny_cnn.onnx"
    nnc.compile(example, "c", tmp_path / "out", verify=False)
    out = tmp_path / "out"
    exe = tmp_path / "golden"
    subprocess.run(["gcc", "-std=c99", *flags, str(out / "tiny_cnn_test.c"), str(out / "tiny_cnn.c"), "-I", str(out),
                    "-lm", "-o", str(exe)], check=True, capture_output=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, cwd=out)
    assert proc.returncode == 0 and "PASS" in proc.stdout and "MISMATCH" not in proc.stdout, proc.stdout
