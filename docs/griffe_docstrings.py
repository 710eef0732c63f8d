"""A griffe extension for the API reference: how deepflash's docstrings are read.

Griffe's Google parser knows only the plural ``Examples:`` as the section of doctest examples and reads
the singular as an admonition of Markdown, where ``>>>`` lines become nested quotes; deepflash's
docstrings write ``Example:``. A package docstring's ``Modules:`` is a table of ``name   what it holds``
lines, which griffe would parse as ``name: description`` pairs; here it stays that table, shown as
preformatted text. Sphinx roles (``:func:`name```, ``:meth:`~Class.name```) become code spans of the
name, as Sphinx shows them. The text is rewritten before griffe parses the docstring (it parses lazily).
"""
from __future__ import annotations

import re
from typing import Any

import griffe

EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)
MODULES = re.compile(r"^(\s*)Modules:[ \t]*$", re.M)
ROLE = re.compile(r":(?:func|meth|class|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _role(match: re.Match) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


class DocstringConventions(griffe.Extension):
    """Reads ``Example:`` as ``Examples:``, ``Modules:`` tables as preformatted text, Sphinx roles as code."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            value = MODULES.sub(r"\1**Modules**\n", value)
            obj.docstring.value = ROLE.sub(_role, value)
