"""Identifier systems, code systems and extension URLs used by the demo resources."""

from __future__ import annotations

from typing import Final

INS_NIR_SYSTEM: Final = "urn:oid:1.2.250.1.213.1.4.8"
RPPS_SYSTEM: Final = "urn:oid:1.2.250.1.71.4.2.1"
FINESS_SYSTEM: Final = "urn:oid:1.2.250.1.71.4.2.2"
FR_V2_0203: Final = "http://interopsante.org/fhir/CodeSystem/fr-v2-0203"
BIRTH_PLACE_URL: Final = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE_URL: Final = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
COMMUNE_SYSTEM: Final = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
UCUM: Final = "http://unitsofmeasure.org"
ATC: Final = "http://www.whocc.no/atc"
CVX: Final = "http://hl7.org/fhir/sid/cvx"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VER: Final = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
MARITAL: Final = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ORG_TYPE: Final = "http://terminology.hl7.org/CodeSystem/organization-type"
