"""The text form of the IR: `print_ir(graph)` and `parse_ir(text)`, with
`print_ir(parse_ir(s)) == s` for every printed `s`. The grammar is grammar.lark;
printer.py describes the canonical form. The parser (and lark) load on first
use of `parse_ir`: printing, which every compile does, needs neither."""

from .printer import print_ir

__all__ = ["parse_ir", "print_ir"]


def __getattr__(name: str):
    if name == "parse_ir":
        from .parser import parse_ir

        return parse_ir
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
