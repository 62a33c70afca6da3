"""Templates compiled to Python render what jinja2 renders (compiler/template_compiler.py).

Each case is a small template and a context, rendered by jinja2 (the
environment nnc's templates are written for: StrictUndefined, template_env's
SETTINGS) and by the compiled template. tests/conftest.py also renders every
C file the suite emits both ways."""

from __future__ import annotations

import jinja2
import pytest

from nnc.template_env import SETTINGS, TemplateError, Templates


class Record:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class NoLength:
    """An iterable without len() (as a generator), iterable again."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)


CASES = {
    "text and values": ("a {{ x }} b {{ y }}\n", {"x": 1, "y": None}),
    "trim and lstrip blocks": ("x\n    {% if a %}\n  yes\n    {% endif %}\nz\n", {"a": True}),
    "whitespace control": ("a  {{- b -}}  c\n{{ '' }}\n", {"b": 2}),
    "final newline kept": ("{{ x }}\n\n", {"x": "t"}),
    "if elif else": ("{% for v in vs %}{% if v < 0 %}n{% elif v == 0 %}z{% else %}p{% endif %}{% endfor %}",
                     {"vs": [-1, 0, 2]}),
    "attribute then item": ("{{ d.a }} {{ r.a }} {{ d['a'] }} {{ r['a'] }} {{ l[1] }} {{ d.items()|length }}",
                            {"d": {"a": 1}, "r": Record(a=2), "l": [5, 6]}),
    "loop fields": ("{% for x in xs %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}"
                    "{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %}", {"xs": "abc"}),
    "nested loops": ("{% for a in as %}{% for b in bs %}{{ a }}{{ b }}{{ ',' if not loop.last }}{% endfor %}"
                     "{{ loop.index }};{% endfor %}", {"as": [1, 2], "bs": "xy"}),
    "loop over an iterable without length": ("{% for x in xs %}{{ x }}{{ '.' if loop.last }}{% endfor %}",
                                             {"xs": NoLength([0, 1, 4])}),
    "tuple targets": ("{% for k, (a, b) in items %}{{ k }}={{ a }}{{ b }} {% endfor %}",
                      {"items": [("p", (1, 2)), ("q", (3, 4))]}),
    "for with if": ("{% for x in xs if x % 2 %}{{ x }}{{ '/' if not loop.last }}{% endfor %}",
                    {"xs": range(7)}),
    "loop scope": ("{% set v = 1 %}{% for v in [5] %}{% set w = v %}{{ v }}{{ w }}{% endfor %}{{ v }}", {}),
    "set shadows context": ("{{ n }}{% set n = n * 2 %}{{ n }}", {"n": 3}),
    "operators": ("{{ 7 // 2 }} {{ 7 / 2 }} {{ 7 % 3 }} {{ 2 ** 5 }} {{ 1 + 2 * 3 - 4 }} {{ -a }} {{ 'x' ~ 1 ~ b }} "
                  "{{ 1 < 2 <= 2 }} {{ 2 in [1, 2] }} {{ 3 not in [1] }} {{ a and b }} {{ 0 or b }} {{ not a }} "
                  "{{ '%d-%s' % (3, 'q') }}", {"a": 4, "b": "y"}),
    "conditional expressions": ("[{{ 'y' if a }}][{{ 'y' if not a }}][{{ 1 if a else 2 }}]", {"a": True}),
    "literals and slices": ("{{ [1, 2, 3][1:] }} {{ (1,) }} {{ {'k': 1}['k'] }} {{ 'abcdef'[::2] }} "
                            "{{ ([('a', 1), ('b', 2)] + [('c', 3)])[:n] }} {{ none }} {{ true }}", {"n": 2}),
    "calls and range": ("{% for i in range(1, 7, 2) %}{{ i }}{% endfor %} {{ f(2, k=3) }} {{ ', '.join(['a', 'b']) }}",
                        {"f": lambda a, k=0: a * 10 + k}),
    "filters": ("{{ xs|length }} {{ xs|count }} {{ xs|join(', ') }} {{ xs|join }} {{ ws|map('length')|join('+') }} "
                "{{ [0, 1, 0, 2]|reject('equalto', 0)|join }} {{ [1, 2, 1]|reject('ne', 1)|join }} "
                "{{ [0, 1, '']|reject|join }} {{ ['a', 'A', 'b', 'a']|unique|join }} "
                "{{ ['a', 'A']|unique(case_sensitive=true)|join }} {{ [none, 1]|reject('none')|join }}",
                {"xs": [3, 1, 2], "ws": ["ab", "c"]}),
    "indent": ("[{{ t|indent }}][{{ t|indent(2, first=true) }}][{{ t|indent('>', blank=true) }}]"
               "[{{ u|indent }}][{{ ''|indent(first=true) }}]", {"t": "a\n\nb\n", "u": "one"}),
    "macros": ("{% macro m(a, b=2, c=none) %}<{{ a }}{{ b }}{{ c }}{{ top }}>{% endmacro %}{% set top = 't' %}"
               "{{ m(1) }}{{ m(1, 3) }}{{ m(1, c=4) }}", {}),
    "macros read the context": ("{% macro m() %}{{ sx }}{% endmacro %}{{ m() }}", {"sx": "s8"}),
    "call blocks": ("{% macro twice(n) %}{% for i in range(n) %}[{{ caller(i) }}]{% endfor %}{% endmacro %}"
                    "{% call(k) twice(2) %}k={{ k }}{{ z }}{% endcall %}", {"z": "!"}),
    "a macro calls one defined after it": ("{% macro a() %}[{{ b() }}]{% endmacro %}{% macro b() %}B{% endmacro %}"
                                           "{{ a() }}", {"b": lambda: "context"}),
    "macros call each other": ("{% macro even(n) %}{{ 'E' if n == 0 else odd(n - 1) }}{% endmacro %}"
                               "{% macro odd(n) %}{{ 'O' if n == 0 else even(n - 1) }}{% endmacro %}{{ even(3) }}",
                               {}),
    "defaults are evaluated at each call": ("{% set t = 1 %}{% macro m(a, b=a, c=t, d=[]) %}{{ a }}{{ b }}{{ c }}"
                                            "{{ d.append(1) or d|length }}{% endmacro %}{% set t = 5 %}"
                                            "{{ m(1) }} {{ m(2) }} {{ m(3, 4, 6) }}", {}),
    "loop read by a macro inside the loop": ("{% for x in 'ab' %}{% macro m() %}{{ loop.index }}{% endmacro %}"
                                             "{{ m() }}{% endfor %}", {}),
    "macro output in loops": ("{% macro row(r) %}{% for c in r %}{{ c }}{% endfor %}\n{% endmacro %}"
                              "{% for r in rows %}{{ row(r) }}{%- endfor %}", {"rows": [[1, 2], [3]]}),
}


def render_jinja2(text: str, context: dict, others: dict | None = None) -> str:
    sources = {"main": text, **(others or {})}
    environment = jinja2.Environment(loader=jinja2.DictLoader(sources), undefined=jinja2.StrictUndefined, **SETTINGS)
    return environment.get_template("main").render(**context)


def render_compiled(text: str, context: dict, others: dict | None = None) -> str:
    sources = {"main": text, **(others or {})}
    return Templates(sources.__getitem__).render("main", **context)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_compiled_template_renders_what_jinja2_renders(case, monkeypatch, tmp_path):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    text, context = CASES[case]
    expected = render_jinja2(text, context)
    assert render_compiled(text, context) == expected
    assert render_compiled(text, context) == expected  # from the cache


def test_imported_macros_see_the_importer_s_context_only_with_context(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    lib = "{% macro shown(x) %}{{ x }}:{{ suffix }}{% endmacro %}{% macro bare(x) %}[{{ x }}]{% endmacro %}"
    importer = ('{% from "lib" import shown with context %}{% from "lib" import bare as b %}'
                "{{ shown(1) }} {{ b(2) }}")
    context = {"suffix": "s"}
    assert render_compiled(importer, context, {"lib": lib}) == render_jinja2(importer, context, {"lib": lib}) \
        == "1:s [2]"


@pytest.mark.parametrize("text, said", [
    ("{{ missing }}", "'missing' is undefined"),
    ("{{ d.nope }}", "no attribute 'nope'"),
    ("{{ d['nope'] }}", "no item 'nope'"),
])
def test_what_is_undefined_is_an_error(text, said, tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    with pytest.raises(jinja2.UndefinedError):
        render_jinja2(text, {"d": {}})
    with pytest.raises(TemplateError, match=said):
        render_compiled(text, {"d": {}})


@pytest.mark.parametrize("text, said", [
    ("x\n{{ a|upper }}", "line 2: the filter 'upper'"),
    ("{% for x in xs %}{% else %}none{% endfor %}", "for loop with else"),
    ("{% if a %}{% set b = 1 %}{% endif %}", "binding 'b' inside an if block"),
    ("{% for x in xs %}{{ loop.cycle(1, 2) }}{% endfor %}", "loop.cycle"),
    ("{{ f(*xs) }}", r"\*args"),
    ("{% include 'x' %}", "the statement Include"),
    ("{% if x is odd %}{% endif %}", "the test 'odd'"),
    ("{% for x in %}", "line 1: Expected an expression"),
    ("{% macro m(_a) %}{% endmacro %}", "the argument name '_a'"),
    ("{% macro m(caller) %}{% endmacro %}", "the argument name 'caller'"),
    ("{{ rs|map(attribute='name')|join(',') }}", "these arguments of the filter 'map'"),
    ("{{ rs|join(',', attribute='name') }}", "these arguments of the filter 'join'"),
    ("{{ rs|map('upper')|join }}", "this filter for 'map'"),
    ("{{ rs|reject('odd')|join }}", "this test for 'reject'"),
    ("{% macro m() %}{{ varargs }}{% endmacro %}", "a macro reading varargs"),
    ("{% set ns.a = 1 %}", "the assignment target NSRef"),
    ("{{ f(class=1) }}", "the keyword argument 'class'"),
    ("{% for loop in [1] %}{% endfor %}", "binding the name 'loop'"),
    ("{% macro m() %}M{% endmacro %}{% set m = 1 %}", "a top-level set of a name a macro"),
    ("\n{% autoescape true %}{% endautoescape %}", "line 2: the statement Scope"),
])
def test_what_the_compiler_does_not_translate_is_refused_when_compiled(text, said, tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    with pytest.raises(TemplateError, match=f"template main.*{said}"):
        Templates({"main": text}.__getitem__).module("main", {})


def test_an_edited_template_is_compiled_again(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    assert render_compiled("a{{ x }}", {"x": 1}) == "a1"
    assert render_compiled("b{{ x }}", {"x": 1}) == "b1"
    assert len(list(tmp_path.rglob("*.code"))) == 2
