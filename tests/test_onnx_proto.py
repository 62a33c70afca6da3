"""The front end's use of onnx without `import onnx` (compiler/frontend/onnx_proto.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from nnc.frontend import onnx_proto
from nnc.frontend.onnx_graph import read_graph

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits.onnx"
NUMERIC = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
           np.int64, np.uint64, np.bool_]


def test_the_classes_are_onnx_s_own():
    assert onnx_proto.ModelProto is onnx.ModelProto and onnx_proto.TensorProto is onnx.TensorProto
    assert onnx_proto.MAX_OPSET == onnx.defs.onnx_opset_version()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NUMERIC).flatmap(lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3,
                                                                                         min_side=0, max_side=4))),
       st.booleans())
def test_tensor_values_read_as_numpy_helper_reads_them(array, raw):
    """raw_data is read here, the typed fields by onnx: both as numpy_helper.to_array."""
    tensor = numpy_helper.from_array(array, "t")
    if not raw:  # the same values in the typed field of their type
        tensor = helper.make_tensor("t", tensor.data_type, array.shape, array.reshape(-1).tolist())
    ours, theirs = onnx_proto.to_array(tensor), numpy_helper.to_array(tensor)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert ours.tobytes() == theirs.tobytes()


def test_other_types_are_read_by_onnx():
    tensor = helper.make_tensor("t", TensorProto.INT4, [3], [-8, 0, 7])
    assert onnx_proto.to_array(tensor).astype(np.int8).tolist() == [-8, 0, 7]


def test_every_attribute_kind_read_as_onnx_helper_reads_it():
    graph = helper.make_graph([], "sub", [], [])
    tensor = numpy_helper.from_array(np.ones(2, np.float32))
    node = helper.make_node("Foo", ["x"], ["y"], f=1.5, i=2, g=graph, gs=[graph, graph], ts=[tensor, tensor],
                            tp=helper.make_tensor_type_proto(TensorProto.FLOAT, [1]))
    model = helper.make_model(helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1])],
                                                [helper.make_tensor_value_info("y", 1, [1])]))
    attrs = read_graph(model.graph).nodes[0].attrs
    for attribute in node.attribute:
        assert attrs[attribute.name] == helper.get_attribute_value(attribute), attribute.name


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_a_compile_does_not_import_the_onnx_package(tmp_path):
    """The CLI's compile reads, checks and infers through onnx's message classes
    and C++ extension alone (the package import costs 0.07 s of every start)."""
    proc = _run(f"""
        import sys
        from nnc.cli import run_cli
        run_cli(["compile", {str(DIGITS)!r}, "--target", "c", "--no-verify", "-o", {str(tmp_path / 'o')!r}])
        sys.exit(3 if "onnx" in sys.modules else 0)
        """)
    assert proc.returncode == 0, proc.stderr


def test_onnx_imported_later_reuses_the_loaded_parts():
    proc = _run(f"""
        from nnc.frontend import onnx_proto
        model = onnx_proto.parse_model(open({str(DIGITS)!r}, "rb").read())
        import onnx, onnx.checker, onnx.numpy_helper
        assert onnx.ModelProto is onnx_proto.ModelProto and type(model) is onnx.ModelProto
        assert onnx.onnx_ml_pb2.ModelProto is onnx.ModelProto  # the parts loaded first are bound on the package
        assert onnx.onnx_cpp2py_export.checker.ValidationError is onnx_proto.ValidationError
        onnx.checker.check_model(model)
        inferred = onnx.shape_inference.infer_shapes(model)
        assert onnx.numpy_helper.to_array(model.graph.initializer[0]).size > 0
        print(len(inferred.graph.value_info))
        """)
    assert proc.returncode == 0, proc.stderr


def test_an_onnx_import_on_another_thread_waits_for_the_parts_being_loaded():
    """While nnc executes onnx_ml_pb2, another thread's `import onnx` must wait for
    it, not take the half-executed module (ImportError: IR_VERSION, 3 in 40 runs
    before the module lock). An audit hook holds nnc inside that execution while
    the other thread imports."""
    proc = _run("""
        import sys, threading, time
        importing = threading.Event()
        errors = []

        def hold_in_messages(event, args):
            if event == "exec" and getattr(args[0], "co_filename", "").endswith("onnx_ml_pb2.py") \\
                    and threading.current_thread() is threading.main_thread() and not importing.is_set():
                importing.set()
                time.sleep(0.3)

        def import_onnx():
            importing.wait()
            try:
                import onnx
                onnx.ModelProto
            except Exception as exc:
                errors.append(repr(exc))

        sys.addaudithook(hold_in_messages)
        other = threading.Thread(target=import_onnx)
        other.start()
        from nnc.frontend import onnx_proto
        other.join()
        import onnx
        assert importing.is_set(), "onnx_ml_pb2 was not executed by nnc"
        assert not errors, errors
        assert onnx.ModelProto is onnx_proto.ModelProto
        """)
    assert proc.returncode == 0, proc.stderr


def test_checker_errors_come_through():
    node = helper.make_node("Relu", ["x"], ["y"], bogus=1)
    model = helper.make_model(helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1])],
                                                [helper.make_tensor_value_info("y", 1, [1])]))
    with pytest.raises(onnx_proto.ValidationError, match="bogus"):
        onnx_proto.check_model(model)
