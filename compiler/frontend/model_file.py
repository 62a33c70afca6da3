"""A model file of either kind nnc reads: ONNX, or the text IR (.nnir) that
`nnc compile --target ir` and `nnc finetune` write."""

from __future__ import annotations

from pathlib import Path

from ..errors import IRError, ModelError, OptionError, not_a_file
from ..ir import Graph
from .onnx_loader import load

TEXT_IR_SUFFIX = ".nnir"


def is_text_ir(path: str | Path) -> bool:
    return str(path).endswith(TEXT_IR_SUFFIX)


def load_model_file(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    """The graph of the ONNX model or text IR file at `path`. A .nnir file must
    be UTF-8, parse and pass the IR verifier (IRError naming the file) and has
    static shapes (OptionError when `input_shapes` are given)."""
    if not is_text_ir(path):
        return load(path, input_shapes)
    from ..textir import parse_ir
    from ..verifier import verify

    if input_shapes:
        said = "applies to ONNX models; a .nnir file has static shapes"
        raise OptionError(f"input_shapes {said}", cli=f"--input-shape {said}")
    problem = not_a_file(path, "model file")
    if problem:
        raise ModelError(f"{path}: {problem}")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise OptionError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IRError(f"{path}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); a .nnir file is "
                      "the text IR that `nnc compile --target ir` writes") from None
    try:
        graph = parse_ir(text)
        verify(graph)
    except IRError as exc:
        raise IRError(f"{path}: {exc}") from None
    return graph
