"""The text form of the IR: `print_ir(graph)` and `parse_ir(text)`, with
`print_ir(parse_ir(s)) == s` for every printed `s`. The grammar is grammar.lark;
printer.py describes the canonical form."""

from .parser import parse_ir
from .printer import print_ir

__all__ = ["parse_ir", "print_ir"]
