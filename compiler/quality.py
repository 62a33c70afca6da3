"""Quality gates and honest warnings about how much a compile lost.

A gate turns a figure of the report into a pass/fail line: `--min-cosine C`
fails when the output cosine to the float model (`verification.vs_float`) is
below C; `--max-accuracy-drop P` fails when the top-1 accuracy on the labelled
verification samples dropped by more than P points. The compile still writes
its artifacts; report["quality_gate"] records every check and the driver then
raises QualityGateError (the CLI's exit code 4).

Warnings (never failures): fewer than MIN_CALIBRATION_SAMPLES calibration
samples when activations are calibrated (the quantize pass warns); a layer whose own output cosine to the float model is below
LAYER_COSINE_WARNING; outputs whose cosine to the float model is below
OUTPUT_COSINE_WARNING; classification outputs whose top class agrees with the
float model's on fewer than TOP1_AGREEMENT_WARNING of at least
MIN_AGREEMENT_SAMPLES samples (a log-probability output keeps its cosine while
its top class changes); labels given for an output that looks like a regression.
"""

from __future__ import annotations

MIN_CALIBRATION_SAMPLES = 16
LAYER_COSINE_WARNING = 0.9
OUTPUT_COSINE_WARNING = 0.99
TOP1_AGREEMENT_WARNING = 0.9
MIN_AGREEMENT_SAMPLES = 10
# Float targets (e.g. C without quantization) sum in another order than the
# reference; their outputs must agree within this fraction of the output range
# (verify_step checks it; the C harness compares with it).
FLOAT_PARITY = 1e-4
STEEP_OPS = ("Log", "Sqrt", "Reciprocal", "Div", "Pow")  # large derivative near 0 for small inputs
WORST_LAYERS_SHOWN = 3


def _limit(value: float) -> str:
    """A limit as given: short, but never rounded (0.9999999 is not 1)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def gate(report: dict, min_cosine: float | None, max_accuracy_drop: float | None) -> dict | None:
    """report["quality_gate"]: {"passed", "checks": [...], "reason"}; None without gates."""
    checks = []
    verification = report.get("verification") or {}
    if min_cosine is not None:
        cosine = verification.get("vs_float", {}).get("cosine")
        checks.append({"gate": "min_cosine", "limit": min_cosine, "value": cosine,
                       "passed": cosine is not None and cosine >= min_cosine,
                       "what": f"output cosine to the float model {_fmt(cosine, '.6f')} (at least {_limit(min_cosine)})"})
    if max_accuracy_drop is not None:
        drop = _top1_drop(verification)
        checks.append({"gate": "max_accuracy_drop", "limit": max_accuracy_drop, "value": drop,
                       "passed": drop is not None and drop <= max_accuracy_drop,
                       "what": f"top-1 accuracy drop {_fmt(drop, '.2f')} points (at most {_limit(max_accuracy_drop)})"})
    if not checks:
        return None
    failed = [c["what"] for c in checks if not c["passed"]]
    return {"passed": not failed, "checks": checks,
            "reason": "quality gate failed: " + "; ".join(failed) if failed else None}


def _top1_drop(verification: dict) -> float | None:
    for metrics in (verification.get("outputs") or {}).values():
        if "top1_drop_points" in metrics:
            return metrics["top1_drop_points"]
    return None


def _fmt(value: float | None, spec: str) -> str:
    return "unknown" if value is None else format(value, spec)


def calibration_warning(samples: int) -> str | None:
    if samples >= MIN_CALIBRATION_SAMPLES:
        return None
    return (f"calibrated on {samples} sample(s); activation ranges from fewer than {MIN_CALIBRATION_SAMPLES} "
            "real samples may not cover the data the model will see")


def layer_error_warning(layers: list[dict]) -> str | None:
    """A warning naming the layers whose own output cosine is below LAYER_COSINE_WARNING."""
    bad = sorted((row["error"]["cosine"], row["name"]) for row in layers
                 if row.get("error") and row["error"]["cosine"] < LAYER_COSINE_WARNING)
    if not bad:
        return None
    shown = ", ".join(f"{name} ({cosine:.3f})" for cosine, name in bad[:WORST_LAYERS_SHOWN])
    more = f" and {len(bad) - WORST_LAYERS_SHOWN} more" if len(bad) > WORST_LAYERS_SHOWN else ""
    return (f"{len(bad)} layer(s) lost much against the float model (output cosine below "
            f"{LAYER_COSINE_WARNING}): {shown}{more}")


def top1_agreement_warning(verification: dict) -> str | None:
    """A warning when a classification output's top class agrees with the float
    model's on fewer than TOP1_AGREEMENT_WARNING of the samples (at least
    MIN_AGREEMENT_SAMPLES of them; too few say little)."""
    vs_float = verification.get("vs_float") or {}
    agreement = vs_float.get("top1_agreement")
    if agreement is None or agreement >= TOP1_AGREEMENT_WARNING or verification["samples"] < MIN_AGREEMENT_SAMPLES:
        return None
    cosine = vs_float.get("cosine")
    said = f" though the outputs' cosine is {cosine:.4f}" if cosine is not None and cosine >= OUTPUT_COSINE_WARNING \
        else ""
    return (f"the top class agrees with the float model's on {agreement:.0%} of {verification['samples']} sample(s) "
            f"(below {TOP1_AGREEMENT_WARNING:.0%}){said}: judge the compression by accuracy (--labels)")


def output_cosine_warning(verification: dict, steep_ops: list[str]) -> str | None:
    """A warning when the compiled outputs' cosine to the float model is below
    OUTPUT_COSINE_WARNING. `steep_ops`: the float model's ops that are steep
    near 0 (Log, Sqrt, Reciprocal, ...), which the warning then names: a loss
    there comes before them, which the per-layer errors (weighted layers only)
    do not show."""
    cosine = (verification.get("vs_float") or {}).get("cosine")
    if cosine is None or cosine >= OUTPUT_COSINE_WARNING:
        return None
    said = (f"the outputs agree with the float model at cosine {cosine:.4f} on {verification['samples']} sample(s) "
            f"(below {OUTPUT_COSINE_WARNING})")
    if not steep_ops:
        return said
    return (f"{said}; the model has {', '.join(steep_ops)}: a float input or activation of wide range that such an "
            "op reads loses its small values to the int8 grid before it (a log-mel front end fed power spectra: "
            "give it log features, or keep the front end out of the model)")
