"""A dataset of the catalogue as a HealthDCAT-AP (release 8) graph, serialised as JSON-LD or
Turtle. The mandatory properties for a non-public dataset are all set: access rights, applicable
legislation, a distribution (itself with its legislation and access URL), identifier, theme,
title, description, health category, the health data access body with a contact point, whether
the data is structured and its variables as a CSVW table group, contact point, keyword, type and
provenance. Counts come rounded (statistics.py); quality is five DQV measurements per table.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, XSD

from carnet.hub.catalogue.statistics import DatasetStatistics

DCATAP = Namespace("http://data.europa.eu/r5r/")
HEALTHDCATAP = Namespace("http://healthdataportal.eu/ns/health#")
CV = Namespace("http://data.europa.eu/m8g/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
DQV = Namespace("http://www.w3.org/ns/dqv#")

EHDS = URIRef("http://data.europa.eu/eli/reg/2025/327/oj")
GDPR = URIRef("http://data.europa.eu/eli/reg/2016/679/oj")
NON_PUBLIC = URIRef("http://publications.europa.eu/resource/authority/access-right/NON_PUBLIC")
HEALTH_THEME = URIRef("http://publications.europa.eu/resource/authority/data-theme/HEAL")
EHR_CATEGORY = URIRef("https://healthdcat-ap.github.io/resource/healthcategories/EHR")
DATASET_TYPE = URIRef("http://publications.europa.eu/resource/authority/dataset-type/STATISTICAL")
QUALITY_DIMENSIONS = ("completeness", "validity", "uniqueness", "timeliness", "consistency")


@dataclass(frozen=True)
class DatasetInfo:
    """What the operator says about a dataset; the rest comes from the data."""

    identifier: str
    title: str
    description: str
    keywords: tuple[str, ...]
    access_body_name: str
    access_body_email: str
    provenance: str


CARNET_RECORD = DatasetInfo(
    identifier="carnet-record",
    title="Dossiers de santé Carnet (OMOP CDM 5.4, pseudonymisés)",
    description=(
        "Données structurées des espaces de santé personnels (diagnostics, médicaments, actes, "
        "résultats de biologie, séjours), extraites en OMOP CDM 5.4 sous autorisation, "
        "pseudonymisées par projet, hors personnes ayant refusé la recherche."
    ),
    keywords=("dossier médical", "OMOP", "soins primaires", "France"),
    access_body_name="Organisme d'accès aux données de santé",
    access_body_email="acces-donnees@example.org",
    provenance="Documents et données déposés par les professionnels et les patients dans Carnet.",
)


def dataset_graph(base_url: str, info: DatasetInfo, stats: DatasetStatistics) -> Graph:
    """The HealthDCAT-AP graph of one dataset, at ``{base_url}/hub/catalogue/{identifier}``."""
    graph = Graph()
    for prefix, namespace in (
        ("dcat", DCAT),
        ("dct", DCTERMS),
        ("dcatap", DCATAP),
        ("healthdcatap", HEALTHDCATAP),
        ("cv", CV),
        ("vcard", VCARD),
        ("csvw", CSVW),
        ("dqv", DQV),
        ("foaf", FOAF),
    ):
        graph.bind(prefix, namespace)
    root = f"{base_url.rstrip('/')}/hub/catalogue/{info.identifier}"
    dataset = URIRef(root)
    add = graph.add
    add((dataset, RDF.type, DCAT.Dataset))
    add((dataset, DCTERMS.identifier, Literal(info.identifier)))
    add((dataset, DCTERMS.title, Literal(info.title, lang="fr")))
    add((dataset, DCTERMS.description, Literal(info.description, lang="fr")))
    add((dataset, DCTERMS.accessRights, NON_PUBLIC))
    for law in (EHDS, GDPR):
        add((dataset, DCATAP.applicableLegislation, law))
    add((dataset, DCAT.theme, HEALTH_THEME))
    add((dataset, HEALTHDCATAP.healthCategory, EHR_CATEGORY))
    add((dataset, DCTERMS.type, DATASET_TYPE))
    for word in info.keywords:
        add((dataset, DCAT.keyword, Literal(word, lang="fr")))

    contact = URIRef(f"{root}#contact")
    add((contact, RDF.type, VCARD.Kind))
    add((contact, VCARD.hasEmail, URIRef(f"mailto:{info.access_body_email}")))
    add((dataset, DCAT.contactPoint, contact))
    access_body = URIRef(f"{base_url.rstrip('/')}/hub/access-body")
    add((access_body, RDF.type, FOAF.Agent))
    add((access_body, FOAF.name, Literal(info.access_body_name, lang="fr")))
    add((access_body, CV.contactPoint, contact))
    add((dataset, HEALTHDCATAP.hdab, access_body))

    provenance = BNode()
    add((provenance, RDF.type, DCTERMS.ProvenanceStatement))
    add((provenance, RDFS.label, Literal(info.provenance, lang="fr")))
    add((dataset, DCTERMS.provenance, provenance))

    distribution = URIRef(f"{root}/distribution/omop")
    add((distribution, RDF.type, DCAT.Distribution))
    add((distribution, DCATAP.applicableLegislation, EHDS))
    add((distribution, DCAT.accessURL, URIRef(f"{base_url.rstrip('/')}/hub/permits")))
    add(
        (
            distribution,
            DCTERMS.title,
            Literal("Extrait OMOP CDM 5.4 (DuckDB) par projet", lang="fr"),
        )
    )
    add((dataset, DCAT.distribution, distribution))

    def count(predicate: URIRef, value: int | None) -> None:
        if value is not None:
            add((dataset, predicate, Literal(value, datatype=XSD.nonNegativeInteger)))

    count(HEALTHDCATAP.numberOfRecords, stats.records)
    count(HEALTHDCATAP.numberOfUniqueIndividuals, stats.individuals)
    count(HEALTHDCATAP.minTypicalAge, stats.min_age)
    count(HEALTHDCATAP.maxTypicalAge, stats.max_age)
    if stats.first_date and stats.last_date:
        period = BNode()
        add((period, RDF.type, DCTERMS.PeriodOfTime))
        add((period, DCAT.startDate, Literal(stats.first_date, datatype=XSD.date)))
        add((period, DCAT.endDate, Literal(stats.last_date, datatype=XSD.date)))
        add((dataset, DCTERMS.temporal, period))
    for system in stats.coding_systems:
        add((dataset, HEALTHDCATAP.hasCodingSystem, URIRef(system)))

    add((dataset, HEALTHDCATAP.hasStructuredData, Literal(True)))
    group = URIRef(f"{root}/variables")
    add((group, RDF.type, CSVW.TableGroup))
    add((group, DCTERMS.title, Literal("OMOP CDM 5.4")))
    add((dataset, HEALTHDCATAP.hasVariables, group))
    for table in stats.tables:
        table_node = URIRef(f"{root}/variables/{table.table}")
        add((table_node, RDF.type, CSVW.Table))
        add((table_node, DCTERMS.title, Literal(table.table)))
        add((group, CSVW.table, table_node))
        if table.records is not None:
            add(
                (
                    table_node,
                    HEALTHDCATAP.numberOfRecords,
                    Literal(table.records, datatype=XSD.nonNegativeInteger),
                )
            )
        for name, kind in table.columns:
            column = URIRef(f"{root}/variables/{table.table}/{name}")
            add((column, RDF.type, CSVW.Column))
            add((column, CSVW.name, Literal(name)))
            add((column, CSVW.title, Literal(name)))
            add((column, CSVW.datatype, Literal(kind.lower())))
            add((column, DCTERMS.description, Literal(f"OMOP CDM 5.4 {table.table}.{name}")))
            add((table_node, CSVW.column, column))
        for dimension in QUALITY_DIMENSIONS:
            measurement = URIRef(f"{root}/quality/{table.table}/{dimension}")
            add((measurement, RDF.type, DQV.QualityMeasurement))
            add(
                (
                    measurement,
                    DQV.isMeasurementOf,
                    URIRef(f"{base_url.rstrip('/')}/hub/quality#{dimension}"),
                )
            )
            add((measurement, DQV.computedOn, table_node))
            value = getattr(table.quality, dimension)
            add((measurement, DQV.value, Literal(value, datatype=XSD.decimal)))
            add((dataset, DQV.hasQualityMeasurement, measurement))
    return graph


def serialised(graph: Graph, media: str) -> str:
    """``json-ld`` or ``turtle``."""
    return graph.serialize(format=media)
