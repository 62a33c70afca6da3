"""prune: exact zero counts per layer and globally, N:M groups, overrides, QDQ
weights, shared weights, determinism and option errors."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from nnc.errors import OptionError
from nnc.ir import Node, Tensor
from nnc.passmanager import format_pipeline, parse_pipeline
from nnc.summary import summarize
from nnc.textir import print_ir
from nnc.verifier import verify

from pass_testing import build

RNG = np.random.default_rng(11)


def randn(*shape, scale=1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def prune(graph, pipeline: str):
    """The pruned copy of `graph`, checked valid with the same interface and shapes."""
    after = graph.copy()
    for p in parse_pipeline(pipeline):
        after = p.run(after)
    verify(after)
    assert after.inputs == graph.inputs and after.outputs == graph.outputs
    assert {n: t.shape for n, t in after.tensors.items()} == {n: t.shape for n, t in graph.tensors.items()}
    return after


def cnn(w1=None, wf=None, trans_b=False):
    """conv1 [8,3,3,3] (pads 1) -> Relu -> Flatten -> Gemm "fc" (x 512 -> 4), NCHW."""
    w1 = randn(8, 3, 3, 3) if w1 is None else w1
    wf = (randn(4, 512, scale=0.1) if trans_b else randn(512, 4, scale=0.1)) if wf is None else wf
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=int(trans_b))]
    return build(nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 4]}, {"w1": w1, "b1": randn(8), "wf": wf, "bf": randn(4)})


def zeros(graph, name: str) -> int:
    return int(np.count_nonzero(graph.tensor(name).data == 0))


def largest_pruned_below_smallest_kept(before: np.ndarray, after: np.ndarray) -> bool:
    pruned, kept = np.abs(before[after == 0]), np.abs(before[after != 0])
    return pruned.size == 0 or kept.size == 0 or pruned.max() <= kept.min()


# -- unstructured, per layer ---------------------------------------------------------------
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_each_layer_loses_exactly_its_share(sparsity):
    graph = cnn()
    after = prune(graph, f"prune{{sparsity={sparsity}}}")
    for name in ("w1", "wf"):
        before, now = graph.tensor(name).data, after.tensor(name).data
        assert zeros(after, name) == round(sparsity * before.size)
        assert largest_pruned_below_smallest_kept(before, now)
        assert np.array_equal(now[now != 0], before[now != 0])  # survivors unchanged
    assert np.array_equal(after.tensor("b1").data, graph.tensor("b1").data)  # biases untouched


def test_default_sparsity_is_one_half():
    after = prune(cnn(), "prune")
    assert zeros(after, "w1") == 108 and zeros(after, "wf") == 1024


def test_zeros_already_there_count():
    w1 = randn(8, 3, 3, 3)
    w1.reshape(-1)[:30] = 0
    graph = cnn(w1=w1)
    assert zeros(prune(graph, "prune{sparsity=0.2}"), "w1") == round(0.2 * 216)  # 43 >= 30
    assert zeros(prune(graph, "prune{sparsity=0.1}"), "w1") == 30  # 22 < 30: nothing more


def test_ties_go_by_position():
    graph = cnn(w1=np.ones((8, 3, 3, 3), np.float32))
    w = prune(graph, "prune{sparsity=0.25}").tensor("w1").data.reshape(-1)
    assert np.count_nonzero(w[:54] == 0) == 54 and np.all(w[54:] == 1)


def test_deterministic():
    graph = cnn()
    for pipeline in ("prune{sparsity=0.3}", "prune{scope=global,sparsity=0.6}", 'prune{pattern="2:4"}'):
        assert print_ir(prune(graph, pipeline)) == print_ir(prune(graph, pipeline))


# -- global scope ------------------------------------------------------------------------------
def test_global_scope_uses_one_threshold():
    graph = cnn(wf=randn(512, 4, scale=0.01))  # fc's weights are 100x smaller
    after = prune(graph, "prune{scope=global,sparsity=0.5}")
    total = 216 + 2048
    assert zeros(after, "w1") + zeros(after, "wf") == round(0.5 * total)
    assert zeros(after, "wf") > zeros(after, "w1")
    before = np.concatenate([graph.tensor(n).data.reshape(-1) for n in ("w1", "wf")])
    now = np.concatenate([after.tensor(n).data.reshape(-1) for n in ("w1", "wf")])
    assert largest_pruned_below_smallest_kept(before, now)


@pytest.mark.parametrize("key", ["conv1", "#1"])
def test_global_scope_with_an_override(key):
    """A layer overridden by name or by id is pruned at its own setting, out of the pool."""
    after = prune(cnn(), f'prune{{scope=global,sparsity=0.5,overrides="{key}:0.25"}}')
    assert zeros(after, "w1") == 54 and zeros(after, "wf") == 1024  # fc alone in the pool


def test_a_layer_named_like_an_id_is_overridden_by_its_own_id():
    """Ids resolve once: with conv1 renamed "#2", "#1" still means that first layer
    (resolving the resolved name again read "#2" as an id: the second layer)."""
    graph = cnn()
    conv = graph.node("conv1")
    graph.remove_node("conv1")
    graph.add_node(Node("#2", conv.op, conv.inputs, conv.outputs, conv.attrs))
    after = prune(graph, 'prune{scope=global,sparsity=0.5,overrides="#1:0.25"}')
    assert zeros(after, "w1") == 54 and zeros(after, "wf") == 1024


# -- overrides -----------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, w1_zeros, wf_zeros", [
    ("conv1:0.25", 54, 1024),
    ("Gemm:0", 108, 0),
    ("conv1:0.25,Gemm:0", 54, 0),
    ("Conv:0.75,conv1:0.25", 54, 1024),  # a name beats an op type
])
def test_overrides_by_name_and_op_type(overrides, w1_zeros, wf_zeros):
    after = prune(cnn(), f'prune{{overrides="{overrides}"}}')
    assert (zeros(after, "w1"), zeros(after, "wf")) == (w1_zeros, wf_zeros)


def test_override_of_an_unknown_layer_is_an_error():
    with pytest.raises(OptionError, match="conv9"):
        prune(cnn(), 'prune{overrides="conv9:0.5"}')


@pytest.mark.parametrize("overrides, message", [
    ("conv1:0.25,conv1:0.5", "'conv1' is given twice"),
    ("#1:0.25, #1 :0.5", "'#1' is given twice"),
    ("#1:0.25,conv1:0.5", "'#1' and 'conv1' name the same layer"),
])
def test_an_override_that_sets_a_layer_twice_is_an_error(overrides, message):
    with pytest.raises(OptionError, match=message):
        prune(cnn(), f'prune{{overrides="{overrides}"}}')


# -- N:M patterns ---------------------------------------------------------------------------------
def groups_of(rows: np.ndarray, m: int):
    """Every group of m consecutive entries of each row, the last one possibly shorter."""
    for row in rows:
        for start in range(0, row.size, m):
            yield row[start:start + m]


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (4, 8), (1, 2)])
def test_pattern_holds_in_every_group(n, m):
    graph = cnn()
    after = prune(graph, f'prune{{pattern="{n}:{m}"}}')
    conv_rows = after.tensor("w1").data.reshape(8, -1)  # 27 weights per output channel
    fc_rows = after.tensor("wf").data.T  # B [K, N]: output channel n is column n
    for rows, before in ((conv_rows, graph.tensor("w1").data.reshape(8, -1)), (fc_rows, graph.tensor("wf").data.T)):
        for group, original in zip(groups_of(rows, m), groups_of(before, m)):
            assert np.count_nonzero(group) == min(n, group.size)
            assert largest_pruned_below_smallest_kept(original, group)


def test_pattern_rows_of_gemm_with_trans_b():
    after = prune(cnn(trans_b=True), 'prune{pattern="2:4"}')
    rows = after.tensor("wf").data  # B [N, K]: row n is output channel n
    assert all(np.count_nonzero(g) == 2 for g in groups_of(rows, 4))


def test_pattern_zero_counts_with_a_short_last_group():
    after = prune(cnn(), 'prune{pattern="2:4"}')
    # conv rows of 27 = 6 groups of 4 (2 pruned each) + 3 (1 pruned); fc rows of 512
    assert zeros(after, "w1") == 8 * (6 * 2 + 1) and zeros(after, "wf") == 4 * 128 * 2


def test_pattern_override_zero_keeps_a_layer_dense():
    after = prune(cnn(), 'prune{pattern="2:4",overrides="Gemm:0"}')
    assert zeros(after, "wf") == 0 and zeros(after, "w1") == 104


def test_matmul_pattern_runs_down_the_columns():
    w = randn(8, 3)
    graph = build([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], {"x": [2, 8]}, {"y": [2, 3]}, {"w": w})
    after = prune(graph, 'prune{pattern="1:2"}').tensor("w").data
    for c in range(3):
        for i in range(0, 8, 2):
            keep = i + 1 if abs(w[i + 1, c]) >= abs(w[i, c]) else i  # on a tie the earlier goes
            assert after[keep, c] == w[keep, c] and after[2 * i + 1 - keep, c] == 0


# -- quantized and shared weights --------------------------------------------------------------------
def qdq_dense(scales):
    """x -> MatMul(DQ(int8 wq [6, 2], per-column scales)) -> y."""
    wq = np.array([[10, -3], [-2, 50], [7, 1], [-9, -40], [3, 60], [-1, 2]], np.int8)
    constants = {"wq": wq, "ws": np.float32(scales), "wz": np.zeros(2, np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=1),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="dense")]
    return build(nodes, {"x": [1, 6]}, {"y": [1, 2]}, constants)


def test_qdq_weights_rank_by_dequantized_magnitude():
    graph = qdq_dense([0.5, 0.001])  # column 1 holds big integers at a tiny scale
    after = prune(graph, "prune{sparsity=0.5}")
    q = after.tensor("wq").data
    assert q.dtype == np.int8 and np.count_nonzero(q == 0) == 6
    assert np.all(q[:, 1] == 0)  # |q| up to 60, but at scale 0.001 the smallest weights
    assert np.array_equal(q[:, 0], graph.tensor("wq").data[:, 0])
    assert summarize(after).totals["zero_params"] == 6


def test_qdq_weights_with_a_zero_point_become_the_zero_point():
    graph = qdq_dense([0.5, 0.5])
    graph.tensors["wz"] = Tensor("wz", "i8", (2,), data=np.int8([3, -2]))
    after = prune(graph, "prune{sparsity=0.5}")
    q = after.tensor("wq").data.astype(int)
    deq = (q - np.array([3, -2])) * 0.5
    assert np.count_nonzero(deq == 0) == 6


def test_shared_weights_are_pruned_once():
    w = randn(4, 4)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="first"),
             helper.make_node("MatMul", ["h", "w"], ["y"], name="second")]
    graph = build(nodes, {"x": [1, 4]}, {"y": [1, 4]}, {"w": w})
    after = prune(graph, 'prune{overrides="first:0.25,second:0.75"}')
    assert zeros(after, "w") == 4  # the first reader's 0.25 of 16


# -- options -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("pipeline, message", [
    ("prune{sparsity=1.0}", "sparsity must be in"),
    ("prune{sparsity=-0.1}", "sparsity must be in"),
    ("prune{scope=model}", "scope must be one of"),
    ('prune{pattern="4:2"}', "pattern must be"),
    ('prune{pattern="2-4"}', "pattern must be"),
    ('prune{pattern="0:4"}', "pattern must be"),
    ('prune{pattern="2:4",scope=global}', "scope=layer"),
    ('prune{pattern="2:4",sparsity=0.75}', "contradicts"),
    ('prune{pattern="2:4",overrides="conv1:0.3"}', "override must be 0 or 0.5"),
    ('prune{overrides="conv1:1.5"}', "conv1:1.5"),
    ('prune{overrides="conv1"}', "KEY:VALUE"),
    ("prune{sparsity=true}", "wrong type"),
])
def test_invalid_options(pipeline, message):
    with pytest.raises(OptionError, match=message) as info:
        parse_pipeline(pipeline)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("pipeline", ['prune{pattern="2:4"}', "prune{sparsity=0.3,scope=global}",
                                      'prune{sparsity=0.5,pattern="2:4"}', 'prune{pattern="1:4",overrides="fc:0"}'])
def test_pipelines_the_driver_writes_parse(pipeline):
    (p,) = parse_pipeline(pipeline)
    assert parse_pipeline(format_pipeline([p])) == [p]
