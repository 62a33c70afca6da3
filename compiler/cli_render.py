"""What the CLI prints for a compile and a simulation: the per-layer tables
(with the layer ids `#i` that per-layer options accept) and the totals."""

from __future__ import annotations

from .tables import format_table, shorten_apart, thousands


def render_sim(sim: dict, ids: dict[str, str] | None = None) -> str:
    """Per-layer and total simulator statistics as a table; `ids` (layer name ->
    "#i", from a compile report) adds the id column."""
    names = shorten_apart([l["name"] for l in sim["layers"]], 40)
    rows = [[name, l["op"], thousands(l["macs_total"]), thousands(l["macs_skipped"]),
             thousands(l["bytes_loaded"]), thousands(l["cycles"]), f"{l['energy_uj']:.3f}"]
            for l, name in zip(sim["layers"], names)]
    headers, numeric = ["layer", "op", "MACs", "skipped", "bytes in", "cycles", "µJ"], {2, 3, 4, 5, 6}
    if ids is not None:
        rows = [[ids.get(l["name"], ""), *row] for l, row in zip(sim["layers"], rows)]
        headers, numeric = ["id", *headers], {i + 1 for i in numeric}
    table = format_table(headers, rows, numeric=numeric)
    skipped = sim["macs_skipped"] / sim["macs_total"] if sim["macs_total"] else 0.0
    return (f"{table}\nsimulated on {sim['hardware']} at {sim['clock_mhz']:g} MHz: "
            f"{thousands(sim['cycles'])} cycles = {sim['latency_ms']:.3f} ms, {sim['energy_uj']:.3f} µJ; "
            f"{thousands(sim['macs_total'])} MACs, {skipped:.1%} skipped; "
            f"{thousands(sim['bytes_loaded'])} bytes loaded off-chip{_tiling(sim)}")


def _tiling(sim: dict) -> str:
    """The tiled layers' clause of the totals line (empty when nothing is tiled)."""
    tiled = [layer for layer in sim["layers"] if layer.get("tiles", 1) > 1]
    if not tiled:
        return ""
    return (f"; {len(tiled)} tiled layer(s) in {thousands(sum(layer['tiles'] for layer in tiled))} pieces, "
            f"{thousands(sim.get('dma_out_bytes', 0))} bytes written off-chip, "
            f"{thousands(sim.get('stall_cycles', 0))} stall cycles")


def render_summary(report: dict) -> str:
    """The terminal summary of a compile report: layers, passes, verification."""
    from .accuracy import accuracy_text  # numpy: not for `nnc --version`

    names = shorten_apart([l["name"] for l in report["layers"]], 48)
    rows = [[l.get("id") or "", name, l["op"], l["format"] or "", l["bits"], l["code_bits"],
             f"{l['sparsity']:.0%}" if l["format"] else "", thousands(l["params"]), thousands(l["macs"]),
             thousands(l["stored_bytes"]), _error(l["error"])] for l, name in zip(report["layers"], names)]
    parts = [format_table(["id", "layer", "op", "format", "bits", "code", "zeros", "params", "MACs", "bytes",
                           "cosine / rmse"], rows, numeric={4, 5, 6, 7, 8, 9})]
    passes = ", ".join(f"{p['name']} {p['seconds'] * 1000:.1f} ms ({p['nodes_before']}→{p['nodes_after']})"
                       for p in report["passes"])
    w = report["weights"]
    parts.append(f"\npipeline: {report['pipeline']}\npasses: {passes}\n"
                 f"weights: {thousands(w['weights'])} stored in {thousands(w['stored_bytes'])} bytes "
                 f"(fp32 {thousands(w.get('model_fp32_bytes', w['fp32_bytes']))}, {w['compression'] or 0:.1f}x smaller), "
                 f"sparsity {w['sparsity']:.1%}{kept_clause(w)}; other parameters {thousands(w['other_bytes'])} bytes; "
                 f"{thousands(report['totals']['macs'])} MACs; compiled in {report['compile_seconds']:.2f} s")
    if "memory" in report:
        m = report["memory"]
        parts.append(f"memory: arena {thousands(m['arena_bytes'])} bytes (naive {thousands(m['arena_naive_bytes'])}, "
                     f"lower bound {thousands(m['arena_lower_bound_bytes'])}), "
                     f"constants in flash {thousands(m['flash_bytes'])} bytes")
        if "packing_hint" in m:
            hint = m["packing_hint"]
            parts.append(f"note: the compressed weights take {thousands(hint['dense_bytes'])} bytes as int8 arrays; "
                         f"--c-weights packed stores them in {thousands(hint['packed_bytes'])} "
                         "(the kernels decode them while running)")
    if "sim" in report:
        parts.append(render_sim(report["sim"], {l["name"]: l["id"] for l in report["layers"] if l.get("id")}))
    as_given = report.get("onnx", {}).get("half_way_pools", {}).get("as_given")
    if as_given:
        parts.append(f"onnx: {len(as_given)} average pool(s) with half-way means written as given (onnxruntime may "
                     f"round those means a step from nnc): {', '.join(as_given)}")
    if "layers_checked" in report.get("onnx", {}):
        o, outputs = report["onnx"], report["verification"]["vs_reference"]["max_abs_diff_lsb"]
        parts.append(f"onnx: opset {o['opset']}; onnxruntime within {o['max_layer_diff_lsb']:g} LSB of nnc's integer "
                     f"ops layer by layer ({o['layers_checked']} layers), outputs within {outputs:g} LSB")
    elif report.get("onnx", {}).get("form") == "integer" and report.get("verification"):
        parts.append(f"onnx: opset {report['onnx']['opset']}, integer form; onnxruntime's outputs equal nnc's "
                     "integer reference bit for bit")
    v = report.get("verification")
    if v:
        ref, flt = v["vs_reference"], v["vs_float"]
        parts.append(f"verification on {v['samples']} sample(s) ({v['source']}): "
                     f"vs reference bit-exact={ref['bit_exact']} max|d|={ref['max_abs_diff']:.3g}; "
                     f"vs {'onnxruntime' if v['float_truth'] == 'onnxruntime' else 'float reference'} "
                     f"max|d|={flt['max_abs_diff']:.3g} cosine={flt['cosine']:.6f}"
                     + (f" top-1 agreement={flt['top1_agreement']:.0%} of {v['samples']}"
                        if flt["top1_agreement"] is not None else ""))
        parts += [f"accuracy of {name}: {accuracy_text(m)}"
                  for name, m in (v.get("outputs") or {}).items() if "top1" in m]
    if report.get("budget"):
        parts.append(render_budget(report["budget"]))
    if report.get("quality_gate"):
        gate = report["quality_gate"]
        parts.append(f"quality gate: {'passed' if gate['passed'] else 'FAILED'}: "
                     + "; ".join(c["what"] for c in gate["checks"]))
    return "\n".join(parts)


def kept_clause(weights: dict) -> str:
    """", N of them (B bytes) in recurrent layers and embedding tables, kept as
    they are" when the report's weights hold such (reports before nnc counted
    them as weights hold no `kept_weights`)."""
    if not weights.get("kept_weights"):
        return ""
    return (f", {thousands(weights['kept_weights'])} of them ({thousands(weights['kept_bytes'])} bytes) in "
            "recurrent layers and embedding tables, kept as they are")


def render_budget(budget: dict) -> str:
    """The budget search: the front it explored and the chosen point."""
    front = ", ".join(f"{thousands(p['bytes'])} B → {p['predicted_mse']:.3g}" for p in budget["front"])
    chosen = ", ".join(f"{i} {l['bits']}b/{l['sparsity']:.0%}" for i, l in budget["layers"].items())
    return (f"budget search: {thousands(budget['budget_bytes'])} bytes asked; explored (bytes → predicted output "
            f"MSE): {front}\nchosen: {thousands(budget['chosen_bytes'])} bytes, predicted MSE "
            f"{budget['predicted_mse']:.3g}: {chosen}")


def _error(error: dict | None) -> str:
    return f"{error['cosine']:.4f} / {error['rmse']:.3g}" if error else ""
