"""The rule table of the policy decision point, and its defaults.

Each rule is a row of ``access_rule``: who (actor kind and, for professionals, profession), which
resource types (``*`` or a comma-separated list: the document classes of the matrix), which action
(``read`` covers read, vread, history and search; ``write`` covers create, update and delete), under
which relationship to the patient, and its effect. Deny rules are evaluated first. Operators may
edit the table; ``seed_rules`` only fills an empty table.

Relationships:
- ``self``: a person acting on their own record;
- ``represented``: a legal representative acting for a minor or protected adult;
- ``care``: a professional with a care relationship (declared by the patient, or by the care
  organisation through an encounter it records); a deposit never creates one;
- ``medecin-traitant``: the patient's declared general practitioner (wider rights, sees items
  masked from other professionals);
- ``deposit``: a professional creating an item in any open record that has not blocked them;
  updating or deleting an item needs the care relationship, or being the item's author;
- ``author``: the professional who deposited an item reads that item (and only it);
- ``break-glass``: emergency access, time-limited, stated reason, unless the patient opposed it;
- ``granted``: an app acting with the patient's grant, within its SMART scopes;
- ``system``: a backend service or operator with ``system/`` scopes;
- ``shared``: resources outside any patient's compartment (directory: organisations, practitioners);
- ``blocked``: a professional the patient has blocked (deny).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, update

from carnet.policy.models import access_rule


@dataclass(frozen=True)
class Rule:
    rule_id: str
    actor: str
    profession: str
    res_types: frozenset[str] | None  # None means every type
    action: str
    relationship: str
    effect: str
    description: str

    def matches(self, actor: str, profession: str | None, res_type: str, action: str) -> bool:
        return (
            self.actor in ("*", actor)
            and self.profession in ("*", profession or "")
            and (self.res_types is None or res_type in self.res_types)
            and self.action in ("*", action)
        )


# What a person may add to their own medical profile (Mon Espace Santé: measures, allergies,
# vaccinations, treatments, history, uploaded documents; family history, people to contact and
# "my professionals", which give no one any right: representatives and care relationships are
# the record's and the access tables', never read from these resources).
PROFILE = (
    "Observation,AllergyIntolerance,Immunization,MedicationStatement,Condition,DocumentReference,"
    "FamilyMemberHistory,RelatedPerson,CareTeam"
)
# The profile's types before migration 0027 (kept for its downgrade).
PROFILE_BEFORE_0027 = (
    "Observation,AllergyIntolerance,Immunization,MedicationStatement,Condition,DocumentReference"
)
CLINICAL_CORE = (
    "Patient,Observation,Condition,AllergyIntolerance,Immunization,MedicationRequest,"
    "MedicationStatement,MedicationDispense,DocumentReference,DiagnosticReport,Encounter,Procedure,"
    "CarePlan,Composition"
)

# Resources outside any record that everyone signed in may read. Other resources without a patient
# (a Binary, an Observation about no one) are for system callers and their depositors' rules.
DIRECTORY = (
    "Organization,Practitioner,PractitionerRole,Location,HealthcareService,Endpoint,Medication,"
    "Substance,CodeSystem,ValueSet,ConceptMap,StructureDefinition,Questionnaire,PlanDefinition"
)

DEFAULT_RULES: tuple[tuple[str, str, str, str, str, str, str, str], ...] = (
    # (rule_id, actor, profession, res_types, action, relationship, effect, description)
    ("pro-blocked", "professional", "*", "*", "*", "blocked", "deny",
     "A professional the patient blocked sees and writes nothing in the record."),
    ("person-self-read", "person", "*", "*", "read", "self", "allow",
     "A person reads their own record, except items not yet shown to them."),
    ("person-self-write", "person", "*", PROFILE, "write", "self", "allow",
     "A person completes their own medical profile."),
    ("representative-read", "representative", "*", "*", "read", "represented", "allow",
     "A legal representative reads the record of the person they represent."),
    ("representative-write", "representative", "*", PROFILE, "write", "represented", "allow",
     "A legal representative completes the profile of the person they represent."),
    ("physician-read", "professional", "physician", "*", "read", "care", "allow",
     "A physician with a care relationship reads the whole record."),
    ("physician-write", "professional", "physician", "*", "write", "deposit", "allow",
     "A physician deposits any document or result (a deposit gives no care relationship)."),
    ("medecin-traitant-read", "professional", "physician", "*", "read", "medecin-traitant",
     "allow", "The médecin traitant reads everything, including items masked from professionals."),
    ("midwife-read", "professional", "midwife", CLINICAL_CORE, "read", "care", "allow",
     "A midwife with a care relationship reads the clinical core."),
    ("midwife-write", "professional", "midwife", CLINICAL_CORE, "write", "deposit", "allow",
     "A midwife deposits clinical documents and results."),
    ("nurse-read", "professional", "nurse",
     "Patient,Observation,Condition,AllergyIntolerance,Immunization,MedicationRequest,"
     "MedicationStatement,DocumentReference,Encounter,Procedure,CarePlan", "read", "care", "allow",
     "A nurse with a care relationship reads care-relevant items."),
    ("nurse-write", "professional", "nurse", "Observation,Immunization,DocumentReference,Procedure",
     "write", "deposit", "allow", "A nurse records measures, vaccinations, care reports."),
    ("pharmacist-read", "professional", "pharmacist",
     "Patient,MedicationRequest,MedicationStatement,MedicationDispense,AllergyIntolerance,"
     "Immunization", "read", "care", "allow",
     "A pharmacist with a care relationship reads treatments, allergies and vaccinations."),
    ("pharmacist-write", "professional", "pharmacist", "MedicationDispense,Immunization",
     "write", "deposit", "allow", "A pharmacist records dispensations and vaccinations."),
    ("biologist-read", "professional", "biologist",
     "Patient,Observation,DiagnosticReport,Specimen,DocumentReference", "read", "care", "allow",
     "A biologist with a care relationship reads results."),
    ("biologist-write", "professional", "biologist",
     "Observation,DiagnosticReport,Specimen,DocumentReference", "write", "deposit", "allow",
     "A biologist deposits laboratory results."),
    ("physiotherapist-read", "professional", "physiotherapist",
     "Patient,Observation,Condition,Procedure,DocumentReference", "read", "care", "allow",
     "A physiotherapist with a care relationship reads functional items."),
    ("physiotherapist-write", "professional", "physiotherapist", "Observation,DocumentReference",
     "write", "deposit", "allow", "A physiotherapist deposits assessments."),
    ("dentist-read", "professional", "dentist",
     "Patient,AllergyIntolerance,MedicationRequest,MedicationStatement,Condition,Immunization,"
     "DocumentReference", "read", "care", "allow",
     "A dentist with a care relationship reads allergies, treatments and history."),
    ("dentist-write", "professional", "dentist", "DocumentReference,Procedure,MedicationRequest",
     "write", "deposit", "allow", "A dentist deposits reports, procedures and prescriptions."),
    ("author-read", "professional", "*", "*", "read", "author", "allow",
     "A professional reads the items they deposited themselves, and nothing more."),
    ("break-glass-read", "professional", "*", "*", "read", "break-glass", "allow",
     "Emergency access: any professional, for a limited time, reason stated, audited, alerted."),
    ("app-granted-read", "app", "*", "*", "read", "granted", "allow",
     "An app reads what the patient granted, within its SMART scopes."),
    ("app-granted-write", "app", "*", "*", "write", "granted", "allow",
     "An app writes what the patient granted, within its SMART scopes."),
    ("backend-system", "backend", "*", "*", "*", "system", "allow",
     "A backend service acts on every record within its system/ scopes."),
    ("operator-system", "operator", "*", "*", "*", "system", "allow",
     "An operator acts on every record within their system/ scopes (imports, exports, checks)."),
    ("directory-read", "*", "*", DIRECTORY, "read", "shared", "allow",
     "Anyone signed in reads the directory and reference data outside any patient's record."),
)  # fmt: skip


def _types(text: str) -> frozenset[str] | None:
    return None if text == "*" else frozenset(t.strip() for t in text.split(",") if t.strip())


def seed_rules(conn: Connection) -> None:
    """Fill an empty rule table with the defaults; an edited table is left alone."""
    if conn.execute(select(func.count()).select_from(access_rule)).scalar_one():
        return
    conn.execute(
        insert(access_rule),
        [
            {
                "rule_id": r[0],
                "actor": r[1],
                "profession": r[2],
                "res_type": r[3],
                "action": r[4],
                "relationship": r[5],
                "effect": r[6],
                "description": r[7],
            }
            for r in DEFAULT_RULES
        ],
    )


def load_rules(conn: Connection) -> list[Rule]:
    """Every rule, deny rules first."""
    rows = conn.execute(select(access_rule).order_by(access_rule.c.rule_id)).all()
    rules = [
        Rule(
            r.rule_id,
            r.actor,
            r.profession,
            _types(r.res_type),
            r.action,
            r.relationship,
            r.effect,
            r.description,
        )
        for r in rows
    ]
    return sorted(rules, key=lambda rule: rule.effect != "deny")


class RuleError(ValueError):
    """An edit the rule table refuses (unknown rule, bad effect or type list)."""


def edit_rule(
    conn: Connection, rule_id: str, *, effect: str | None = None, res_types: str | None = None
) -> None:
    """Change one rule's effect (allow/deny) or resource types (``*`` or a comma list)."""
    values: dict[str, str] = {}
    if effect is not None:
        if effect not in ("allow", "deny"):
            raise RuleError("effect is allow or deny")
        values["effect"] = effect
    if res_types is not None:
        types = _types(res_types)
        if types is not None and (not types or any(not t.isalpha() for t in types)):
            raise RuleError("resource types are '*' or a comma-separated list of FHIR types")
        values["res_type"] = res_types
    if not values:
        raise RuleError("nothing to change: give --effect or --types")
    done = conn.execute(
        update(access_rule).where(access_rule.c.rule_id == rule_id).values(**values)
    )
    if done.rowcount != 1:
        raise RuleError(f"no rule {rule_id}")
