"""The small subset of FHIRPath that search-parameter expressions use.

R4 search parameters are defined by FHIRPath expressions. Nearly all are unions of simple paths,
optionally with a type cast (``as`` / ``ofType``) or a filter (``where(resolve() is Patient)``,
``where(system='email')``). We compile those into steps evaluated on the JSON directly; an expression
outside the subset compiles to ``None`` and its parameter is not offered (nor advertised).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_CAST = re.compile(r"^(?:as|ofType)\(\s*([A-Za-z][A-Za-z0-9.]*)\s*\)$")
_INFIX_CAST = re.compile(r"^(.*?)\s+as\s+([A-Za-z][A-Za-z0-9.]*)$")
_WHERE_RESOLVE = re.compile(r"^where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)$")
_WHERE_EQUALS = re.compile(r"^where\(\s*([A-Za-z]+)\s*=\s*'([^']*)'\s*\)$")


@dataclass(frozen=True)
class Step:
    """One step: a child element name, or a filter on the current nodes."""

    name: str = ""
    choice: bool = (
        False  # a choice element named without its type: effective -> effectiveDateTime...
    )
    resolve_is: str = ""  # keep references whose target type is this
    where_field: str = ""  # keep nodes whose field equals where_value
    where_value: str = ""


Path = tuple[Step, ...]


def _split_top(expr: str, sep: str) -> list[str]:
    parts: list[str] = []
    depth, start, quoted = 0, 0, False
    for i, ch in enumerate(expr):
        if ch == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and expr.startswith(sep, i):
            parts.append(expr[start:i])
            start = i + len(sep)
    parts.append(expr[start:])
    return [p.strip() for p in parts]


def _strip_parens(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")") and _balanced(expr[1:-1]):
        expr = expr[1:-1].strip()
    return expr


def _balanced(expr: str) -> bool:
    depth = 0
    for ch in expr:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _cast_name(field: str, type_name: str) -> str:
    base = type_name.rsplit(".", 1)[-1]
    return field + base[0].upper() + base[1:]


def compile_path(
    expr: str, resource_type: str, choice_paths: frozenset[str] = frozenset()
) -> Path | None:
    """Compile one union member for ``resource_type``; None if it is for another type or unsupported."""
    expr = _strip_parens(expr)
    cast = _INFIX_CAST.match(expr)
    cast_type = ""
    if cast:
        expr, cast_type = _strip_parens(cast.group(1)), cast.group(2)
    segments = _split_top(expr, ".")
    if not segments or segments[0] not in (resource_type, "Resource", "DomainResource"):
        return None
    steps: list[Step] = []
    dotted = resource_type
    for seg in segments[1:]:
        if _NAME.match(seg):
            dotted += "." + seg
            steps.append(Step(name=seg, choice=dotted in choice_paths))
        elif m := _CAST.match(seg):
            if not steps or not steps[-1].name:
                return None
            steps[-1] = Step(name=_cast_name(steps[-1].name, m.group(1)))
        elif m := _WHERE_RESOLVE.match(seg):
            steps.append(Step(resolve_is=m.group(1)))
        elif m := _WHERE_EQUALS.match(seg):
            steps.append(Step(where_field=m.group(1), where_value=m.group(2)))
        else:
            return None
    if cast_type:
        if not steps or not steps[-1].name:
            return None
        steps[-1] = Step(name=_cast_name(steps[-1].name, cast_type))
    return tuple(steps)


def compile_expression(
    expr: str, resource_type: str, choice_paths: frozenset[str] = frozenset()
) -> list[Path] | None:
    """Compile a (union) expression for one resource type.

    Returns the paths that apply to ``resource_type`` (possibly empty when the expression is about
    other types), or None when a member for this type uses FHIRPath outside the subset.
    """
    paths: list[Path] = []
    for member in _split_top(_strip_parens(expr), "|"):
        head = _strip_parens(member).split(".", 1)[0].strip("( ")
        if head not in (resource_type, "Resource", "DomainResource"):
            continue
        path = compile_path(member, resource_type, choice_paths)
        if path is None:
            return None
        paths.append(path)
    return paths


Getter = Callable[[Any], Sequence[Any]]


def compile_getter(path: Path) -> Getter:
    """``path`` as a function giving every node it reaches from a resource (lists flattened),
    built once per path (tests/unit/fhir/reference_fhirpath.py interprets paths as the oracle).

    Indexing runs every search parameter of a type over every resource written; interpreting the
    steps each time cost more than the extraction itself, so each step becomes a closure here.
    """
    steps = [_step_function(step) for step in path]
    if len(steps) == 1:
        (only,) = steps
        return lambda node: only((node,))
    if len(steps) == 2:
        first, second = steps

        def two(node: Any) -> Sequence[Any]:
            found = first((node,))
            return second(found) if found else found

        return two

    def many(node: Any) -> Sequence[Any]:
        nodes: Sequence[Any] = (node,)
        for step in steps:
            nodes = step(nodes)
            if not nodes:
                break
        return nodes

    return many


def _step_function(step: Step) -> Callable[[Sequence[Any]], Sequence[Any]]:
    if step.choice:
        name, size = step.name, len(step.name)

        def choice(nodes: Sequence[Any]) -> Sequence[Any]:
            return [
                value
                for node in nodes
                if isinstance(node, dict)
                for key, value in node.items()
                if key.startswith(name) and key[size : size + 1].isupper()
            ]

        return choice
    if step.name:
        name = step.name

        def child(nodes: Sequence[Any]) -> Sequence[Any]:
            if len(nodes) == 1:  # the common case: one parent, no list to build
                parent = nodes[0]
                value = parent.get(name) if isinstance(parent, dict) else None
                if value is None:
                    return ()
                return value if isinstance(value, list) else (value,)
            out: list[Any] = []
            for node in nodes:
                if isinstance(node, dict):
                    value = node.get(name)
                    if isinstance(value, list):
                        out.extend(value)
                    elif value is not None:
                        out.append(value)
            return out

        return child
    if step.resolve_is:
        prefix = step.resolve_is + "/"
        inner = "/" + prefix

        def resolves(nodes: Sequence[Any]) -> Sequence[Any]:
            out = []
            for node in nodes:
                ref = node.get("reference", "") if isinstance(node, dict) else ""
                if isinstance(ref, str) and (ref.startswith(prefix) or inner in ref):
                    out.append(node)
            return out

        return resolves
    field, wanted = step.where_field, step.where_value
    return lambda nodes: [n for n in nodes if isinstance(n, dict) and n.get(field) == wanted]
