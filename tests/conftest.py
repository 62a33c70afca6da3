"""pytest configuration. Its presence puts tests/ on sys.path, so test modules in
sub-folders can import the shared helper module `mlperf`.

Every template a test renders in its own process is rendered by jinja2 as well,
and the texts must be equal: nnc renders its templates as compiled Python
(compiler/template_compiler.py), whose meaning is jinja2's."""

import jinja2
import pytest

from nnc.template_env import SETTINGS, Templates


@pytest.fixture(autouse=True, scope="session")
def _templates_render_as_jinja2_does():
    rendered = Templates.render

    def render_both(self, name, **context):
        environment = self.__dict__.get("_jinja2")
        if environment is None:
            environment = self._jinja2 = jinja2.Environment(loader=jinja2.FunctionLoader(self._source),
                                                            undefined=jinja2.StrictUndefined, **SETTINGS)
        text = rendered(self, name, **context)  # first: the errors asked for are nnc's
        expected = environment.get_template(name).render(**context)
        assert text == expected, f"template {name}: the compiled template renders other text than jinja2"
        return text

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Templates, "render", render_both)
        yield
