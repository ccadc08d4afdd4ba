"""Templates: sandboxed Jinja2 with StrictUndefined, a `slug` filter and a fast path for plain substitution."""

from __future__ import annotations

import pytest

from batchrun.errors import TemplateProblem
from batchrun.planning.templates import CompiledTemplate, make_environment, slug

ENV = make_environment()


def render(source: str, **variables) -> str:
    return CompiledTemplate(ENV, source).render(variables)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Picnic Table 4:5", "picnic-table-4-5"),
        ("  Kitchen   counter!! ", "kitchen-counter"),
        ("Crème brûlée", "creme-brulee"),
        ("16:9", "16-9"),
        (1.5, "1-5"),
        ("日本", ""),
        ("a/b\\c", "a-b-c"),
    ],
)
def test_slug(value, expected):
    assert slug(value) == expected
    assert render("{{ v | slug }}", v=value) == expected


VARIABLES = {"title": "Mug", "n": 3, "price": 2.5, "flag": True, "nothing": None, "tags": ["a", "b"]}


@pytest.mark.parametrize(
    "source",
    [
        "plain text, no variables",
        "{{ title }}",
        "The {{title}} x{{ n }} at {{ price }}: {{ flag }} {{ nothing }} {{ tags }}.",
        "{{ title }}\n",
        "line one\n{{ title }}\n\n",
        "{{ true }} {{ none }} {{ False }}",
    ],
)
def test_plain_substitution_matches_jinja(source):
    jinja = ENV.from_string(source).render(VARIABLES)
    assert render(source, **VARIABLES) == jinja


def test_full_jinja_is_available():
    source = "{% for t in tags %}[{{ t | upper }}]{% endfor %} {{ title ~ '!' if flag else '' }} {{ n * 2 }}"
    assert render(source, **VARIABLES) == "[A][B] Mug! 6"


@pytest.mark.parametrize(
    "source", ["Hi {{ colour }}", "{{ colour | upper }}", "{% if colour %}x{% endif %}", "{{ title }} {{ colour }}"]
)
def test_a_missing_variable_is_an_error_naming_it(source):
    with pytest.raises(TemplateProblem) as caught:
        render(source, title="Mug")
    assert str(caught.value) == "undefined variable 'colour'"
    assert caught.value.variable == "colour"


def test_a_missing_attribute_is_an_error_too():
    with pytest.raises(TemplateProblem) as caught:
        render("{{ row.colour }}", row={"title": "Mug"})
    assert caught.value.variable is None
    assert "colour" in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ title.__class__ }}",
        "{{ tags.append('c') }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_the_sandbox_refuses_unsafe_access(source):
    tags = ["a", "b"]
    with pytest.raises(TemplateProblem):
        render(source, title="Mug", tags=tags)
    assert tags == ["a", "b"]


@pytest.mark.parametrize("source", ["{{ title ", "{% for x in tags %}", "{{ title | no_such_filter }}", "{% endif %}"])
def test_syntax_errors_are_found_when_compiled(source):
    with pytest.raises(TemplateProblem) as caught:
        CompiledTemplate(ENV, source)
    assert str(caught.value).startswith("template syntax error: ")
    assert "\n" not in str(caught.value)


def test_a_runtime_error_is_one_line():
    with pytest.raises(TemplateProblem) as caught:
        render("{{ n // 0 }}", n=1)
    assert str(caught.value) == "template failed: ZeroDivisionError: integer division or modulo by zero"


def test_no_autoescape():
    assert render("{{ t }}", t="<b>&'\"") == "<b>&'\""


@pytest.mark.parametrize(
    "source",
    [
        "JSON-like {braces} and {{ title }} with } and { alone",
        "{{ title }}{{ n }}{{ price }}",
        "a {{ tags }} b {{ flag }} c {{ nothing }}",
        "{0} {title} {{ title }}",
    ],
)
def test_fast_path_renders_literal_braces_and_values_as_jinja(source):
    assert render(source, **VARIABLES) == ENV.from_string(source).render(VARIABLES)
