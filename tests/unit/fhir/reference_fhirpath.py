"""The straightforward FHIRPath-subset interpreter: steps walked one by one per resource. The
oracle that ``carnet.fhir.fhirpath.compile_getter``'s closures must match (test_fhirpath.py) and
that the reference indexer walks paths with; production code compiles paths instead."""

from __future__ import annotations

from typing import Any

from carnet.fhir.fhirpath import Path


def evaluate(resource: dict[str, Any], path: Path) -> list[Any]:
    """Every node reached by ``path`` from ``resource`` (lists are flattened), in document order.
    A list, not a generator: the reference indexer calls this ~4 million times over the corpus,
    mostly for paths the resource lacks, where a generator's set-up was most of the cost."""
    nodes: list[Any] = [resource]
    for step in path:
        nxt: list[Any] = []
        if step.choice:
            size = len(step.name)
            for node in nodes:
                if isinstance(node, dict):
                    for key, value in node.items():
                        if key.startswith(step.name) and key[size : size + 1].isupper():
                            nxt.append(value)
        elif step.name:
            for node in nodes:
                if isinstance(node, dict):
                    value = node.get(step.name)
                    if isinstance(value, list):
                        nxt.extend(value)
                    elif value is not None:
                        nxt.append(value)
        elif step.resolve_is:
            prefix = step.resolve_is + "/"
            for node in nodes:
                ref = node.get("reference", "") if isinstance(node, dict) else ""
                if isinstance(ref, str) and (ref.startswith(prefix) or f"/{prefix}" in ref):
                    nxt.append(node)
        else:
            nxt = [
                n
                for n in nodes
                if isinstance(n, dict) and n.get(step.where_field) == step.where_value
            ]
        nodes = nxt
        if not nodes:
            return nodes
    return nodes
