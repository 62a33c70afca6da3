"""Jinja2 templates compiled to plain Python, which renders without jinja2.

jinja2 reads the template (its lexer and parser, with template_env.SETTINGS),
and this module turns the syntax tree into the source of one Python function,
`root(_ctx, _out, _exports)`: it appends the text to `_out` and puts the
template-level macros and `set` names into `_exports`. The code calls only the
helpers of template_env (`RUNTIME`), so a compiled template renders with
jinja2 not even imported (issue 14: jinja2's import is 0.02 s of every
`nnc compile --target c`). Every name the code makes starts with `_`; a
macro's arguments keep their names (keyword calls name them), so a template
may not start an argument's name with `_`.

The output equals jinja2's (tests/test_template_compiler.py; the test suite
also renders every C file it emits both ways, tests/conftest.py) for the
constructs nnc's templates use: output, if/elif/else, for (tuple targets,
an `if` filter, `loop.index0/index/first/last/length/revindex/revindex0`),
set, macro (defaults evaluated per call, `caller`), call blocks, `from ...
import` (with or without context), the operators, conditional expressions,
calls, the filters of template_env with the arguments FILTER_ARGUMENTS
lists, its tests. Anything else is refused with a TemplateError naming the
template and line when it is compiled: other statements, filters, tests and
targets, `loop` bound by anything but a for loop, macros reading varargs or
kwargs, keyword arguments or macro arguments named as Python keywords.

Scoping: a name bound in a block (loop target, set, macro argument) is a
Python local of its own, unseen outside the block, and a block's macros and
imports are bound from its start (a macro may call one defined after it);
a top-level set assigns in the template's context, which macros read when
called; any other name is looked up in the context, then in the globals
(`range`). Where this differs from jinja2 it is stricter or exotic: an
undefined name, attribute, item or imported name, or a macro argument left
out without a default, is an error where it is read or called (jinja2's
StrictUndefined errs only where the value is used); a conditional
expression without else gives "" (jinja2's Undefined prints as "" too, but
compares and computes otherwise); a set in a block after a macro that reads
the name is not seen by it.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable

import jinja2
from jinja2 import nodes

from .template_env import FILTER_ARGUMENTS, FILTERS, LOOP_FIELDS, SETTINGS, TESTS, TemplateError

_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "FloorDiv": "//", "Mod": "%", "Pow": "**"}
_COMPARE = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "in": "in", "notin": "not in"}
_ENVIRONMENT = jinja2.Environment(**SETTINGS)


def python_source(name: str, text: str) -> str:
    """The Python source of template `name` (its text `text`); TemplateError
    for a syntax error or a construct this compiler does not translate."""
    try:
        tree = _ENVIRONMENT.parse(text, name=name)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {name}, line {exc.lineno}: {exc.message}") from None
    writer = _Writer(name)
    writer.line("def root(_ctx, _out, _exports):")
    writer.indent += 1
    writer.line("_ctx = dict(_ctx)  # the template's own: top-level sets assign in it")
    writer.line("_w = _out.append")
    writer.block(tree.body, _Scope(None), top=True)
    writer.line("pass")
    return "\n".join(writer.lines) + "\n"


class _Scope:
    """Jinja names bound in one block -> their Python locals; `ready`, those
    assigned by the statement being compiled (a block's macros and imports
    are bound from its start, so that a macro may call one defined after
    it, but are ready only where they are defined). An if branch is
    `conditional`: jinja2 binds its names in the enclosing block, where they
    may stay unbound, so none may be bound there."""

    def __init__(self, parent: _Scope | None, conditional: bool = False):
        self.parent, self.names, self.conditional, self.ready = parent, {}, conditional, set()

    def find(self, name: str) -> str | None:
        scope = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def visible(self) -> dict[str, str]:
        """Every ready name and its local, inner scopes first."""
        found = self.parent.visible() if self.parent is not None else {}
        return found | {name: local for name, local in self.names.items() if name in self.ready}


class _Writer:
    """Python lines for one template."""

    def __init__(self, name: str):
        self.name, self.lines, self.indent, self.count = name, [], 0, 0

    def line(self, text: str) -> None:
        self.lines.append("    " * self.indent + text)

    def local(self, scope: _Scope, name: str, node: nodes.Node, ready: bool = True) -> str:
        """A new Python local for jinja name `name`, bound in `scope` by `node`
        (`loop` only by a for loop: jinja2 refuses any other binding of it)."""
        if scope.conditional:
            raise self.refuse(node, f"binding {name!r} inside an if block")
        if name == "loop" and not isinstance(node, nodes.For):
            raise self.refuse(node, "binding the name 'loop'")
        self.count += 1
        scope.names[name] = f"_{self.count}_{name}"
        if ready:
            scope.ready.add(name)
        return scope.names[name]

    def refuse(self, node: nodes.Node, what: str):
        line = next((n.lineno for n in (node, *node.find_all(nodes.Node)) if n.lineno is not None), "?")
        return TemplateError(f"template {self.name}, line {line}: {what} is not supported by nnc's "
                             "template compiler (compiler/template_compiler.py)")

    # -- statements --------------------------------------------------------------
    def block(self, body: list[nodes.Node], scope: _Scope, top: bool = False) -> None:
        """The statements of `body`; `top`: the template's own level. Its
        macros and imports are bound first (see _Scope)."""
        for node in body:
            if isinstance(node, nodes.Macro):
                self.local(scope, node.name, node, ready=False)
            elif isinstance(node, nodes.FromImport):
                for entry in node.names:
                    self.local(scope, entry[1] if isinstance(entry, tuple) else entry, node, ready=False)
        for node in body:
            method = getattr(self, f"stmt_{type(node).__name__}", None)
            if method is None:
                raise self.refuse(node, f"the statement {type(node).__name__}")
            method(node, scope, top)

    def stmt_Output(self, node: nodes.Output, scope: _Scope, top: bool) -> None:
        for part in node.nodes:
            if isinstance(part, nodes.TemplateData):
                if part.data:
                    self.line(f"_w({part.data!r})")
            else:
                self.line(f"_w(_str({self.expr(part, scope)}))")

    def stmt_If(self, node: nodes.If, scope: _Scope, top: bool) -> None:
        opening = "if"
        for branch in [node, *node.elif_]:
            self.line(f"{opening} {self.expr(branch.test, scope)}:")
            self.body(branch.body, _Scope(scope, conditional=True))
            opening = "elif"
        if node.else_:
            self.line("else:")
            self.body(node.else_, _Scope(scope, conditional=True))

    def stmt_For(self, node: nodes.For, scope: _Scope, top: bool) -> None:
        if node.else_ or node.recursive:
            raise self.refuse(node, "a for loop with else or recursive")
        inner = _Scope(scope)
        uses_loop = any(n.name == "loop" for n in _names(node.body, into_macros=True))
        items = self.expr(node.iter, scope)
        if node.test is not None:
            self.count += 1
            kept, item = f"_{self.count}kept", f"_{self.count}item"
            self.line(f"{kept} = []")
            self.line(f"for {item} in {items}:")
            self.indent += 1
            test_scope = _Scope(scope)
            self.line(f"{self.target(node.target, test_scope)} = {item}")
            self.line(f"if {self.expr(node.test, test_scope)}:")
            self.line(f"    {kept}.append({item})")
            self.indent -= 1
            items = kept
        target = self.target(node.target, inner)
        if uses_loop:
            self.count += 1
            seq, index = f"_{self.count}seq", f"_{self.count}index"
            self.line(f"{seq} = _list({items})")
            self.line(f"for {index}, {target} in _enumerate({seq}):")
            self.indent += 1
            self.line(f"{self.local(inner, 'loop', node)} = _Loop({index}, _len({seq}))")
            self.indent -= 1
        else:
            self.line(f"for {target} in {items}:")
        self.body(node.body, inner)

    def stmt_Assign(self, node: nodes.Assign, scope: _Scope, top: bool) -> None:
        """A set in a block binds a local; at the template's top level, as in
        jinja2, a context variable, which macros look up when called."""
        self.check_target(node.target)
        value = self.expr(node.node, scope)
        if not top:
            self.line(f"{self.target(node.target, scope)} = {value}")
            return
        names = _target_names(node.target)
        if "loop" in names:
            raise self.refuse(node, "binding the name 'loop'")
        if any(name in scope.names for name in names):
            raise self.refuse(node, "a top-level set of a name a macro or an import binds")
        spelled = _spelled_target(node.target, lambda name: f"_ctx[{name!r}]")
        self.line(f"{spelled} = {value}")
        for name in names:
            self.line(f"_exports[{name!r}] = _ctx[{name!r}]")

    def stmt_Macro(self, node: nodes.Macro, scope: _Scope, top: bool) -> None:
        local = scope.names[node.name]  # bound by `block`
        used = {n.name for n in _names(node.body)} - {arg.name for arg in node.args}
        if used & {"varargs", "kwargs"}:
            raise self.refuse(node, f"a macro reading {' and '.join(sorted(used & {'varargs', 'kwargs'}))}")
        self.function(local, node.args, node.defaults, node.body, scope, takes_caller="caller" in used)
        scope.ready.add(node.name)
        if top:
            self.line(f"_exports[{node.name!r}] = {local}")

    def stmt_CallBlock(self, node: nodes.CallBlock, scope: _Scope, top: bool) -> None:
        self.count += 1
        caller = f"_{self.count}caller"
        self.function(caller, node.args, node.defaults, node.body, scope, takes_caller=False)
        self.line(f"_w(_str({self.call(node.call, scope, extra=(f'caller={caller}',))}))")

    def stmt_FromImport(self, node: nodes.FromImport, scope: _Scope, top: bool) -> None:
        if not isinstance(node.template, nodes.Const):
            raise self.refuse(node, "an import from a computed template name")
        if node.with_context:
            bound = ", ".join(f"{name!r}: {local}" for name, local in scope.visible().items())
            context = f"{{**_ctx, {bound}}}" if bound else "_ctx"
        else:
            context = "{}"
        self.count += 1
        module = f"_{self.count}module"
        self.line(f"{module} = _templates.module({node.template.value!r}, {context})")
        for entry in node.names:
            name, alias = entry if isinstance(entry, tuple) else (entry, entry)
            self.line(f"{scope.names[alias]} = _imported({module}, {node.template.value!r}, {name!r})")
            scope.ready.add(alias)

    def function(self, local: str, args: list[nodes.Name], defaults: list[nodes.Expr], body: list[nodes.Node],
                 scope: _Scope, takes_caller: bool) -> None:
        """`def local(args...)`: the rendered text of `body`, in a scope of its
        arguments. A default is evaluated at each call that leaves its
        argument out, in that scope (it may read the arguments before it)."""
        inner = _Scope(scope)
        for arg in args:  # keyword arguments name them: the Python parameters have their names
            if arg.name.startswith("_") or keyword.iskeyword(arg.name) or arg.name in ("caller", "loop"):
                raise self.refuse(arg, f"the argument name {arg.name!r} (a Python keyword, jinja2's caller or "
                                       "loop, or a name starting with _ as the compiler's own names do)")
            inner.names[arg.name] = arg.name
            inner.ready.add(arg.name)
        params = [arg.name for arg in args]
        first_default = len(params) - len(defaults)
        spelled = [p if i < first_default else f"{p}=_DEFAULT" for i, p in enumerate(params)]
        if takes_caller:  # given by keyword, as jinja2 passes it
            inner.names["caller"] = "caller"
            inner.ready.add("caller")
            spelled += ["*", "caller=None"]
        self.line(f"def {local}({', '.join(spelled)}):")
        self.indent += 1
        for param, default in zip(params[first_default:], defaults):
            self.line(f"if {param} is _DEFAULT:")
            self.line(f"    {param} = {self.expr(default, inner)}")
        self.line("_out = []")
        self.line("_w = _out.append")
        self.block(body, inner)
        self.line("return ''.join(_out)")
        self.indent -= 1

    def body(self, body: list[nodes.Node], scope: _Scope) -> None:
        self.indent += 1
        self.block(body, scope)
        self.line("pass")
        self.indent -= 1

    def target(self, node: nodes.Node, scope: _Scope) -> str:
        """The Python target binding the names of `node` as new locals of `scope`."""
        self.check_target(node)
        return _spelled_target(node, lambda name: self.local(scope, name, node))

    def check_target(self, node: nodes.Node) -> None:
        """TemplateError unless `node` is a Name or nested Tuples of Names."""
        for part in (node, *node.find_all(nodes.Node)):
            if not isinstance(part, (nodes.Name, nodes.Tuple)):
                raise self.refuse(node, f"the assignment target {type(part).__name__}")

    # -- expressions -------------------------------------------------------------
    def expr(self, node: nodes.Node, scope: _Scope) -> str:
        kind = type(node).__name__
        if kind in _BINARY:
            return f"({self.expr(node.left, scope)} {_BINARY[kind]} {self.expr(node.right, scope)})"
        method = getattr(self, f"expr_{kind}", None)
        if method is None:
            raise self.refuse(node, f"the expression {kind}")
        return method(node, scope)

    def expr_Const(self, node: nodes.Const, scope: _Scope) -> str:
        return repr(node.value)

    def expr_Name(self, node: nodes.Name, scope: _Scope) -> str:
        local = scope.find(node.name)
        return local if local is not None else f"_lookup(_ctx, {node.name!r})"

    def expr_Getattr(self, node: nodes.Getattr, scope: _Scope) -> str:
        if isinstance(node.node, nodes.Name) and node.node.name == "loop" and scope.find("loop") is not None \
                and node.attr not in LOOP_FIELDS:
            raise self.refuse(node, f"loop.{node.attr}")
        return f"_attr({self.expr(node.node, scope)}, {node.attr!r})"

    def expr_Getitem(self, node: nodes.Getitem, scope: _Scope) -> str:
        if isinstance(node.arg, nodes.Slice):
            return f"{self.expr(node.node, scope)}[{self.expr(node.arg, scope)}]"
        return f"_item({self.expr(node.node, scope)}, {self.expr(node.arg, scope)})"

    def expr_Slice(self, node: nodes.Slice, scope: _Scope) -> str:
        parts = ["" if part is None else self.expr(part, scope) for part in (node.start, node.stop, node.step)]
        return ":".join(parts)

    def expr_Tuple(self, node: nodes.Tuple, scope: _Scope) -> str:
        return "(" + "".join(f"{self.expr(item, scope)}, " for item in node.items) + ")"

    def expr_List(self, node: nodes.List, scope: _Scope) -> str:
        return "[" + ", ".join(self.expr(item, scope) for item in node.items) + "]"

    def expr_Dict(self, node: nodes.Dict, scope: _Scope) -> str:
        return "{" + ", ".join(f"{self.expr(p.key, scope)}: {self.expr(p.value, scope)}" for p in node.items) + "}"

    def expr_Concat(self, node: nodes.Concat, scope: _Scope) -> str:
        return "''.join((" + "".join(f"_str({self.expr(part, scope)}), " for part in node.nodes) + "))"

    def expr_CondExpr(self, node: nodes.CondExpr, scope: _Scope) -> str:
        otherwise = "''" if node.expr2 is None else self.expr(node.expr2, scope)
        return f"({self.expr(node.expr1, scope)} if {self.expr(node.test, scope)} else {otherwise})"

    def expr_Compare(self, node: nodes.Compare, scope: _Scope) -> str:
        text = self.expr(node.expr, scope)
        for operand in node.ops:
            text += f" {_COMPARE[operand.op]} {self.expr(operand.expr, scope)}"
        return f"({text})"

    def expr_And(self, node: nodes.And, scope: _Scope) -> str:
        return f"({self.expr(node.left, scope)} and {self.expr(node.right, scope)})"

    def expr_Or(self, node: nodes.Or, scope: _Scope) -> str:
        return f"({self.expr(node.left, scope)} or {self.expr(node.right, scope)})"

    def expr_Not(self, node: nodes.Not, scope: _Scope) -> str:
        return f"(not {self.expr(node.node, scope)})"

    def expr_Neg(self, node: nodes.Neg, scope: _Scope) -> str:
        return f"(-{self.expr(node.node, scope)})"

    def expr_Call(self, node: nodes.Call, scope: _Scope) -> str:
        return self.call(node, scope)

    def call(self, node: nodes.Call, scope: _Scope, extra: tuple[str, ...] = ()) -> str:
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            raise self.refuse(node, "a call with *args or **kwargs")
        return f"{self.expr(node.node, scope)}({', '.join([*self.arguments(node, scope), *extra])})"

    def arguments(self, node: nodes.Call | nodes.Filter | nodes.Test, scope: _Scope) -> list[str]:
        """The positional, then keyword, arguments of a call, filter or test."""
        for kw in node.kwargs:
            if keyword.iskeyword(kw.key):
                raise self.refuse(node, f"the keyword argument {kw.key!r} (a Python keyword)")
        return [self.expr(a, scope) for a in node.args] + [f"{k.key}={self.expr(k.value, scope)}" for k in node.kwargs]

    def expr_Filter(self, node: nodes.Filter, scope: _Scope) -> str:
        if node.name not in FILTERS:
            raise self.refuse(node, f"the filter {node.name!r}")
        positional, keywords = FILTER_ARGUMENTS[node.name]
        if len(node.args) > positional or any(k.key not in keywords for k in node.kwargs):
            raise self.refuse(node, f"these arguments of the filter {node.name!r}")
        if node.name in ("map", "reject") and node.args:
            named = node.args[0]
            known = FILTERS if node.name == "map" else TESTS
            if not isinstance(named, nodes.Const) or named.value not in known:
                raise self.refuse(node, f"this {'filter' if node.name == 'map' else 'test'} for {node.name!r}")
        return self.applied("_FILTERS", node, scope)

    def expr_Test(self, node: nodes.Test, scope: _Scope) -> str:
        if node.name not in TESTS:
            raise self.refuse(node, f"the test {node.name!r}")
        return self.applied("_TESTS", node, scope)

    def applied(self, table: str, node: nodes.Filter | nodes.Test, scope: _Scope) -> str:
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            raise self.refuse(node, f"this use of {node.name!r}")
        return f"{table}[{node.name!r}]({', '.join([self.expr(node.node, scope), *self.arguments(node, scope)])})"


def _names(body: list[nodes.Node], into_macros: bool = False):
    """The Name nodes in `body`; those of macros' bodies only `into_macros`
    (a macro reads its own `caller`, but the `loop` of a loop around it)."""
    for node in body:
        if isinstance(node, nodes.Macro) and not into_macros:
            continue
        if isinstance(node, nodes.Name):
            yield node
        yield from _names(list(node.iter_child_nodes()), into_macros)


def _spelled_target(node: nodes.Node, spell: Callable[[str], str]) -> str:
    """`node`, a Name or nested Tuple of Names, as a Python target whose names are `spell(name)`."""
    if isinstance(node, nodes.Name):
        return spell(node.name)
    return "(" + "".join(f"{_spelled_target(item, spell)}, " for item in node.items) + ")"


def _target_names(node: nodes.Node) -> list[str]:
    return [node.name] if isinstance(node, nodes.Name) else [n for item in node.items for n in _target_names(item)]

