"""Whether a spec value is a template: told by its `{{` or `{%`, without loading Jinja.

Spec loading and the generation-config checks ask this of literal values; `templates.py` renders them.
"""

from __future__ import annotations

import re
from typing import Any

_TEMPLATE = re.compile(r"{{|{%")


def is_template(value: Any) -> bool:
    return isinstance(value, str) and bool(_TEMPLATE.search(value))
