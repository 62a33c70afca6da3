"""The C kernel library: which source file holds each kernel family, what it
depends on, and how a model's kernel set is assembled.

Kernel sources live in `kernels/`: plain C (`.c`, `.h`, copied verbatim) or
type-parameterised templates (`.c.j2`, rendered with jinja2 where a family
works on several element types: `{{ tx }}`, `{{ ty }}`, `{{ sfx }}`, ...).
A model's `<name>_kernels.h` holds exactly the instances its schedule calls, as
`static` functions, after the shared definitions they need (`base.h` always,
`qbase.h` and `requant.h` for integer arithmetic). A template may import the
macros of another (`{% from "qconv.c.j2" import block with context %}`): the
packed-weight kernels reuse the dense kernels' loops that way.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path

from nnc.records import record
from nnc.template_env import Templates

C_TYPES = {"f32": "float", "f64": "double", "i8": "int8_t", "u8": "uint8_t", "i16": "int16_t",
           "i32": "int32_t", "i64": "int64_t", "bool": "uint8_t", "u16": "uint16_t", "u32": "uint32_t"}


@record
class Family:
    source: str
    deps: tuple[str, ...] = ("base",)


FAMILIES = {
    "base": Family("base.h", ()),
    "qbase": Family("qbase.h"),
    "qround": Family("qround.h"),
    "requant": Family("requant.h", ("base", "qbase", "qround")),
    "rqchannel": Family("rqchannel.h", ("base", "qbase")),
    "conv_f32": Family("conv_f32.c"),
    "dwconv_f32": Family("dwconv_f32.c"),
    "qdot": Family("qdot.c.j2"),
    "qconv": Family("qconv.c.j2", ("base", "rqchannel")),
    "qconv_col": Family("qconvcol.c.j2", ("base", "rqchannel")),
    "qdwconv": Family("qdwconv.c.j2", ("base", "requant", "rqchannel")),
    "gemm_f32": Family("gemm_f32.c"),
    "qgemm": Family("qgemm.c.j2", ("base", "requant")),
    # the fast int8 kernels (qfast.py): Helium, DSP or portable paths chosen when compiled
    "qarm": Family("qarm.h"),
    "qmm": Family("qmm.c.j2", ("base", "qarm")),
    "qmms": Family("qmms.c.j2", ("base", "qarm")),
    "qmmconv": Family("qmmconv.c.j2", ("base", "qarm")),
    "qdwf": Family("qdwf.c.j2", ("base", "qarm")),
    "qpoolf": Family("qpoolf.c.j2", ("base", "qarm")),
    "qaddf": Family("qaddf.c.j2", ("base", "qarm")),
    # packed weights (docs/c-target.md): row iterators per format, then the kernels
    "qpacked": Family("qpacked.h"),
    "qp_dense": Family("qp_dense.c", ("base", "qpacked")),
    "qp_bitmask": Family("qp_bitmask.c", ("base", "qpacked")),
    "qp_rle": Family("qp_rle.c", ("base", "qpacked")),
    "qp_codebook": Family("qp_codebook.c", ("base", "qpacked")),
    "qp_unpack": Family("qpunpack.c.j2", ("base", "qpacked")),
    "qconvp": Family("qconvp.c.j2", ("base", "qpacked", "rqchannel")),
    "qdwconvp": Family("qdwconvp.c.j2", ("base", "qpacked", "rqchannel")),
    "qconvs": Family("qconvs.c.j2", ("base", "qpacked", "rqchannel")),
    "qgemmp": Family("qgemmp.c.j2", ("base", "qpacked", "requant")),
    "maxpool": Family("maxpool.c.j2"),
    "avgpool_f32": Family("avgpool_f32.c"),
    "qavgpool": Family("qavgpool.c.j2", ("base", "requant")),
    "unary": Family("unary.c.j2"),
    "binary": Family("binary.c.j2"),
    "qadd": Family("qadd.c.j2", ("base", "qbase", "qround")),
    "requantize": Family("requantize.c.j2", ("base", "requant")),
    "qlut": Family("qlut.c.j2"),
    "qelementwise": Family("qelementwise.h"),
    "qmul": Family("qmul.c.j2", ("base", "requant", "qelementwise")),
    "qaffine": Family("qaffine.c.j2", ("base", "qround", "qelementwise")),
    "qresize_geom": Family("qresize.h"),
    "qresize": Family("qresize.c.j2", ("base", "requant", "qresize_geom")),
    "resize_f32": Family("resize_f32.c"),
    "softmax_f32": Family("softmax_f32.c"),
    "softmax_masked_f32": Family("softmax_masked_f32.c", ("base",)),
    "logsoftmax_f32": Family("logsoftmax_f32.c"),
    "qsoftmax": Family("qsoftmax.c.j2", ("base", "qbase", "qround")),
    "qsoftmax_masked": Family("qsoftmax_masked.c.j2", ("base", "qbase", "qround")),
    "qlogsoftmax": Family("qlogsoftmax.c.j2", ("base", "qbase", "qround")),
    "qrecurrent": Family("qrecurrent.h", ("base", "qround")),
    "qlstm": Family("qlstm.c", ("base", "qround", "qrecurrent")),
    "qgru": Family("qgru.c", ("base", "qround", "qrecurrent")),
    "qrnn": Family("qrnn.c", ("base", "qround", "qrecurrent")),
    "frecurrent": Family("frecurrent.h"),
    "lstm_f32": Family("lstm_f32.c", ("base", "frecurrent")),
    "gru_f32": Family("gru_f32.c", ("base", "frecurrent")),
    "rnn_f32": Family("rnn_f32.c", ("base", "frecurrent")),
    "transpose": Family("transpose.c.j2"),
    "pad": Family("pad.c.j2"),
    "copy_rows": Family("copy_rows.c"),
    "strided_h": Family("strided.h"),
    "strided": Family("strided.c.j2", ("base", "strided_h")),
    "gather": Family("gather.c.j2"),
    "cast": Family("cast.c.j2"),
    "quantize": Family("quantize.c.j2"),
    "dequantize": Family("dequantize.c.j2"),
    "channel_affine_f32": Family("channel_affine_f32.c"),
    # transformer blocks (ops_transformer.py)
    "qtransformer": Family("qtransformer.h"),
    "qlnmath": Family("qlnmath.h"),
    "reduceloops": Family("reduceloops.h"),
    "qreduce": Family("qreduce.c.j2", ("base", "qtransformer", "requant", "reduceloops")),
    "qmatmul": Family("qmatmul.c.j2", ("base", "qtransformer", "requant")),
    "qlayernorm": Family("qlayernorm.c.j2", ("base", "qtransformer", "qround", "qlnmath")),
    "reduce_f32": Family("reduce_f32.c", ("base", "reduceloops")),
    "layernorm_f32": Family("layernorm_f32.c"),
}


def source_text(name: str) -> str:
    return (Path(__file__).parent / "kernels" / name).read_text(encoding="utf-8")


_TEMPLATES = Templates(source_text)


@record(frozen=False)
class KernelSet:
    """The kernel instances one model uses, in order of first use; each function
    name is rendered once."""

    instances: dict[str, tuple[str, dict]] = field(default_factory=dict)
    uses_math: bool = False

    def use(self, family: str, fn: str | None = None, parts: tuple[int, ...] | None = None, **params) -> str:
        """Register an instance of `family` (function name `fn`, default the
        family name) rendered with `params`; returns the function name. `parts`:
        the pieces of the instance this user calls (qdot: its row counts); the
        instance renders the union of its users' parts, so none goes unused."""
        if family not in FAMILIES:
            raise KeyError(family)
        fn = fn or family
        if fn in self.instances:
            known_family, known = self.instances[fn]
            if (known_family, {k: v for k, v in known.items() if k != "parts"}) != (family, params):
                raise ValueError(f"kernel {fn} instantiated twice with different parameters")
            parts = known.get("parts") if parts is None else tuple(set(parts) | set(known.get("parts", ())))
        if parts is not None:
            params["parts"] = tuple(sorted(parts, reverse=True))
        self.instances[fn] = (family, params)
        return fn

    def families(self) -> list[str]:
        """Families in dependency order (shared definitions first)."""
        order: list[str] = []

        def visit(name: str) -> None:
            for dep in FAMILIES[name].deps:
                visit(dep)
            if name not in order:
                order.append(name)

        visit("base")
        for family, _ in self.instances.values():
            visit(family)
        return order

    def render(self) -> list[str]:
        """The source text of every shared definition and kernel instance."""
        shared = [f for f in self.families() if not any(f == fam for fam, _ in self.instances.values())]
        texts = [source_text(FAMILIES[f].source) for f in shared]
        for fn, (family, params) in self.instances.items():
            source = FAMILIES[family].source
            if source.endswith(".j2"):
                texts.append(_TEMPLATES.render(source, fn=fn, **params))
            else:
                texts.append(source_text(source))
        return texts
