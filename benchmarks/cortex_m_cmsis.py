"""The CMSIS-NN side of benchmarks/cortex_m.py: a C program calling CMSIS-NN's
kernels layer by layer the way TensorFlow Lite Micro's CMSIS-NN port does, on
an nnc graph's weights and one input sample, with a `bench_mark()` call after
each layer (cortex_m.py counts the instructions between them). Weights in
TFLite's layouts, quantization parameters converted to CMSIS-NN's conventions
(left-positive shifts, negated input offsets)."""

from __future__ import annotations

import math

import numpy as np


def c_array(name: str, ctype: str, values, const: bool = True) -> str:
    flat = np.asarray(values).reshape(-1)
    body = ", ".join(str(int(v)) for v in flat)
    qualifier = "const " if const else ""
    return f"static {qualifier}{ctype} {name}[{max(flat.size, 1)}] __attribute__((aligned(16))) = {{{body}}};\n"


def quant_arrays(graph, node, i: int) -> list[str]:
    """Per-channel multipliers and CMSIS shifts (left-positive: 31 - nnc's right shift)."""
    multiplier = graph.tensor(node.inputs[3]).data
    shift = 31 - graph.tensor(node.inputs[4]).data.astype(np.int64)
    return [c_array(f"m{i}", "int32_t", multiplier), c_array(f"s{i}", "int32_t", shift)]


def bias_of(graph, node, count: int) -> np.ndarray:
    return graph.tensor(node.inputs[2]).data if len(node.inputs) > 2 and node.inputs[2] else np.zeros(count, np.int32)


def conv_call(graph, node, i: int, src: str, dst: str) -> tuple[list[str], str]:
    a = node.attrs
    n, h, w, cin = graph.tensor(node.inputs[0]).shape
    _, oh, ow, cout = graph.tensor(node.outputs[0]).shape
    weights = graph.tensor(node.inputs[1]).data  # [cout, cin / group, kh, kw]
    kh, kw = a.kernel_shape
    depthwise = a.group == cin and weights.shape[1] == 1 and cin > 1
    layout = weights[:, 0].transpose(1, 2, 0) if depthwise else weights.transpose(0, 2, 3, 1)
    data = [c_array(f"w{i}", "int8_t", layout), c_array(f"b{i}", "int32_t", bias_of(graph, node, cout)),
            *quant_arrays(graph, node, i)]
    common = (f"{{{a.strides[1]}, {a.strides[0]}}}, {{{a.pads[1]}, {a.pads[0]}}}, "
              f"{{{a.dilations[1]}, {a.dilations[0]}}}, {{{a.out_min}, {a.out_max}}}")
    dims = (f"id = {{{n}, {h}, {w}, {cin}}}, bd = {{1, 1, 1, {cout}}}, od = {{1, {oh}, {ow}, {cout}}}, "
            f"fd = {{{1 if depthwise else cout}, {kh}, {kw}, {cout if depthwise else cin}}}")
    if depthwise:
        kind = "depthwise_conv"
        params = f"cmsis_nn_dw_conv_params p = {{{-a.x_zero_point}, {a.y_zero_point}, {cout // cin}, {common}}}"
    else:
        kind, params = "convolve", f"cmsis_nn_conv_params p = {{{-a.x_zero_point}, {a.y_zero_point}, {common}}}"
    call = f"""    {{
        const {params};
        const cmsis_nn_per_channel_quant_params q = {{(int32_t *)m{i}, (int32_t *)s{i}}};
        const cmsis_nn_dims {dims};
        const cmsis_nn_context c = {{scratch, arm_{kind}_wrapper_s8_get_buffer_size(&p, &id, &fd, &od)}};
        status |= arm_{kind}_wrapper_s8(&c, &p, &q, &id, {src}, &fd, w{i}, &bd, b{i}, &od, {dst});
    }}"""
    return data, call


def pool_call(graph, node, i: int, src: str, dst: str) -> tuple[list[str], str]:
    a = node.attrs
    n, h, w, c = graph.tensor(node.inputs[0]).shape
    _, oh, ow, _ = graph.tensor(node.outputs[0]).shape
    call = f"""    {{
        const cmsis_nn_pool_params p = {{{{{a.strides[1]}, {a.strides[0]}}}, {{{a.pads[1]}, {a.pads[0]}}}, {{{a.out_min}, {a.out_max}}}}};
        const cmsis_nn_dims id = {{{n}, {h}, {w}, {c}}}, fd = {{1, {a.kernel_shape[0]}, {a.kernel_shape[1]}, 1}}, od = {{1, {oh}, {ow}, {c}}};
        const cmsis_nn_context ctx = {{scratch, arm_avgpool_s8_get_buffer_size({ow}, {c})}};
        status |= arm_avgpool_s8(&ctx, &p, &id, {src}, &fd, &od, {dst});
    }}"""
    return [], call


def gemm_call(graph, node, i: int, src: str, dst: str) -> tuple[list[str], str, str]:
    """(data, call, prepare): the prepare code fills the kernel sums TFLM computes in Prepare."""
    a = node.attrs
    depth = graph.tensor(node.inputs[0]).shape[-1]
    weights = graph.tensor(node.inputs[1]).data  # [cout, depth]
    cout = weights.shape[0]
    multiplier = graph.tensor(node.inputs[3]).data
    data = [c_array(f"w{i}", "int8_t", weights), c_array(f"b{i}", "int32_t", bias_of(graph, node, cout)),
            f"static int32_t sums{i}[{cout}];\n", *quant_arrays(graph, node, i)]
    per_tensor = bool(np.all(multiplier == multiplier[0]))
    function, quant = ("arm_fully_connected_s8", f"cmsis_nn_per_tensor_quant_params q = {{m{i}[0], s{i}[0]}}") \
        if per_tensor else ("arm_fully_connected_per_channel_s8",
                            f"cmsis_nn_per_channel_quant_params q = {{(int32_t *)m{i}, (int32_t *)s{i}}}")
    dims = f"id = {{1, 1, 1, {depth}}}, fd = {{{depth}, 1, 1, {cout}}}, bd = {{1, 1, 1, {cout}}}, od = {{1, 1, 1, {cout}}}"
    prepare = f"""    {{
        const cmsis_nn_dims {dims};
        if (arm_fully_connected_s8_get_buffer_size(&fd) > 0) {{
            arm_vector_sum_s8(sums{i}, {depth}, {cout}, w{i}, {-a.x_zero_point}, 0, b{i});
        }}
    }}"""
    call = f"""    {{
        const cmsis_nn_fc_params p = {{{-a.x_zero_point}, 0, {a.y_zero_point}, {{{a.out_min}, {a.out_max}}}}};
        const {quant};
        const cmsis_nn_dims {dims};
        const cmsis_nn_context c = {{sums{i}, arm_fully_connected_s8_get_buffer_size(&fd)}};
        status |= {function}(&c, &p, &q, &id, {src}, &fd, w{i}, &bd, b{i}, &od, {dst});
    }}"""
    return data, call, prepare


def tflite_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: (q, e) with real ≈ q · 2^(e − 31), q in [2^30, 2^31) (0, 0 for tiny reals)."""
    fraction, exponent = math.frexp(real)
    multiplier = round(fraction * 2**31)
    if multiplier == 2**31:
        multiplier, exponent = multiplier // 2, exponent + 1
    return (0, 0) if exponent < -31 else (multiplier, exponent)


def add_call(graph, node, sources: tuple[str, str], dst: str) -> str:
    """arm_elementwise_add_s8 with TFLite's add scaling: both inputs shifted left by 20, rescaled to
    twice the larger input scale, summed, then rescaled to the output (all multipliers below one)."""
    a, b = (graph.tensor(name) for name in node.inputs[:2])
    if a.shape != b.shape:
        raise NotImplementedError(f"QAdd ({node.name}) broadcasts {a.shape} with {b.shape}; only equal shapes map")
    left_shift, scale_a, scale_b = 20, a.quant.scale[0], b.quant.scale[0]
    scale_y = graph.tensor(node.outputs[0]).quant.scale[0]
    twice_max_input_scale = 2 * max(scale_a, scale_b)
    m_a, e_a = tflite_multiplier(scale_a / twice_max_input_scale)
    m_b, e_b = tflite_multiplier(scale_b / twice_max_input_scale)
    m_y, e_y = tflite_multiplier(twice_max_input_scale / ((1 << left_shift) * scale_y))
    x = node.attrs
    return (f"    status |= arm_elementwise_add_s8({sources[0]}, {sources[1]}, {-x.a_zero_point}, {m_a}, {e_a}, "
            f"{-x.b_zero_point}, {m_b}, {e_b}, {left_shift}, {dst}, {x.y_zero_point}, {m_y}, {e_y}, "
            f"{x.out_min}, {x.out_max}, {int(np.prod(a.shape))});")


def softmax_call(graph, node, src: str, dst: str) -> str:
    """arm_softmax_s8 with TFLite's scaling for beta 1 and 5 integer bits of the input difference."""
    scale = graph.tensor(node.inputs[0]).quant.scale[0]
    multiplier, exponent = tflite_multiplier(min(scale * 2.0**26, 2.0**31 - 1))
    diff_min = -math.floor(31 * 2.0**26 / 2.0**exponent)
    rows, size = int(np.prod(graph.tensor(node.inputs[0]).shape[:-1])), graph.tensor(node.inputs[0]).shape[-1]
    return f"    arm_softmax_s8({src}, {rows}, {size}, {multiplier}, {exponent}, {diff_min}, {dst});"


def cmsis_program(graph, sample: np.ndarray) -> str:
    """C source of the model as CMSIS-NN calls with a bench_mark() after each; raises
    NotImplementedError naming an op this generator does not map."""
    data = [c_array("input0", "int8_t", sample.astype(np.int8), const=False)]
    buffers = {graph.inputs[0]: "input0"}  # tensor name -> C array holding it
    prepare, calls = [], []
    for i, node in enumerate(graph.nodes()):
        if node.op in ("Reshape", "Flatten", "Identity"):
            buffers[node.outputs[0]] = buffers[node.inputs[0]]
            continue
        current, target = buffers[node.inputs[0]], f"act{i}"
        data.append(f"static int8_t {target}[{int(np.prod(graph.tensor(node.outputs[0]).shape))}] "
                    "__attribute__((aligned(16)));\n")
        if node.op == "QConv":
            more, call = conv_call(graph, node, i, current, target)
        elif node.op == "QAveragePool":
            more, call = pool_call(graph, node, i, current, target)
        elif node.op == "QGemm":
            more, call, ready = gemm_call(graph, node, i, current, target)
            prepare.append(ready)
        elif node.op == "QSoftmax":
            more, call = [], softmax_call(graph, node, current, target)
        elif node.op == "QAdd":
            more, call = [], add_call(graph, node, (current, buffers[node.inputs[1]]), target)
        else:
            raise NotImplementedError(f"{node.op} ({node.name}) has no CMSIS-NN mapping here")
        data += more
        calls += [call, "    bench_mark();"]
        buffers[node.outputs[0]] = target
    return ("#include \"arm_nnfunctions.h\"\n#include \"harness.h\"\n\n"
            "void bench_mark(void);\n__attribute__((noinline)) void bench_mark(void) { __asm volatile(\"\"); }\n"
            "static int8_t scratch[32768] __attribute__((aligned(16)));\n" + "".join(data) +
            "\nint main(void)\n{\n    int status = 0;\n" + "\n".join(prepare) + "\n    bench_mark();\n" +
            "\n".join(calls) + "\n    fw_puts(status == 0 ? \"ok\\n\" : \"error\\n\");\n"
            "    return 0;\n}\n")
