"""Carnet's own SHACL shapes for the HealthDCAT-AP release 8 properties a non-public dataset must
have (HealthDCAT-AP release 8, "Dataset" mandatory properties and the NON_PUBLIC additions;
written for Carnet from the specification, not copied from its validator). Each requirement is
one property shape, so one missing property is one violation. Used by the tests (pyshacl) and by
anyone checking the catalogue's output."""

from __future__ import annotations

SHAPES_TURTLE = """
@prefix sh: <http://www.w3.org/ns/shacl#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix dcatap: <http://data.europa.eu/r5r/> .
@prefix healthdcatap: <http://healthdataportal.eu/ns/health#> .
@prefix cv: <http://data.europa.eu/m8g/> .
@prefix vcard: <http://www.w3.org/2006/vcard/ns#> .
@prefix csvw: <http://www.w3.org/ns/csvw#> .
@prefix carnet: <urn:carnet:shapes:healthdcat-ap-r8#> .

carnet:Dataset a sh:NodeShape ;
  sh:targetClass dcat:Dataset ;
  sh:property
    [ sh:path dct:accessRights ; sh:minCount 1 ; sh:maxCount 1 ; sh:nodeKind sh:IRI ;
      sh:message "access rights: exactly one IRI" ] ,
    [ sh:path dcatap:applicableLegislation ; sh:minCount 1 ; sh:nodeKind sh:IRI ;
      sh:message "applicable legislation: at least one IRI" ] ,
    [ sh:path dcat:distribution ; sh:minCount 1 ; sh:node carnet:Distribution ;
      sh:message "at least one distribution" ] ,
    [ sh:path dct:identifier ; sh:minCount 1 ; sh:nodeKind sh:Literal ;
      sh:message "identifier: at least one literal" ] ,
    [ sh:path dcat:theme ; sh:minCount 1 ; sh:nodeKind sh:IRI ; sh:message "theme: an IRI" ] ,
    [ sh:path dct:title ; sh:minCount 1 ; sh:nodeKind sh:Literal ; sh:message "title" ] ,
    [ sh:path dct:description ; sh:minCount 1 ; sh:nodeKind sh:Literal ;
      sh:message "description" ] ,
    [ sh:path healthdcatap:healthCategory ; sh:minCount 1 ; sh:nodeKind sh:IRI ;
      sh:message "health category: an IRI" ] ,
    [ sh:path healthdcatap:hdab ; sh:minCount 1 ; sh:maxCount 1 ; sh:node carnet:AccessBody ;
      sh:message "the health data access body, with a contact point: exactly one" ] ,
    [ sh:path healthdcatap:hasStructuredData ; sh:minCount 1 ; sh:maxCount 1 ;
      sh:datatype xsd:boolean ; sh:message "whether the data is structured: one boolean" ] ,
    [ sh:path healthdcatap:hasVariables ; sh:node carnet:TableGroup ;
      sh:message "variables: a CSVW table group" ] ,
    [ sh:path dcat:contactPoint ; sh:minCount 1 ; sh:node carnet:Contact ;
      sh:message "contact point (non-public datasets)" ] ,
    [ sh:path dcat:keyword ; sh:minCount 1 ; sh:nodeKind sh:Literal ;
      sh:message "keyword (non-public datasets)" ] ,
    [ sh:path dct:type ; sh:minCount 1 ; sh:nodeKind sh:BlankNodeOrIRI ;
      sh:message "type (non-public datasets)" ] ,
    [ sh:path dct:provenance ; sh:minCount 1 ; sh:nodeKind sh:BlankNodeOrIRI ;
      sh:message "provenance (non-public datasets)" ] ,
    [ sh:path healthdcatap:numberOfRecords ; sh:maxCount 1 ; sh:datatype xsd:nonNegativeInteger ] ,
    [ sh:path healthdcatap:numberOfUniqueIndividuals ; sh:maxCount 1 ;
      sh:datatype xsd:nonNegativeInteger ] ,
    [ sh:path healthdcatap:minTypicalAge ; sh:maxCount 1 ; sh:datatype xsd:nonNegativeInteger ] ,
    [ sh:path healthdcatap:maxTypicalAge ; sh:maxCount 1 ; sh:datatype xsd:nonNegativeInteger ] ;
  sh:sparql [
    sh:message "structured data needs its variables (healthdcatap:hasVariables)" ;
    sh:select \"\"\"
      PREFIX healthdcatap: <http://healthdataportal.eu/ns/health#>
      SELECT $this WHERE {
        $this healthdcatap:hasStructuredData true .
        FILTER NOT EXISTS { $this healthdcatap:hasVariables ?group }
      }\"\"\" ] .

carnet:Distribution a sh:NodeShape ;
  sh:property
    [ sh:path dcatap:applicableLegislation ; sh:minCount 1 ; sh:nodeKind sh:IRI ] ,
    [ sh:path dcat:accessURL ; sh:minCount 1 ; sh:nodeKind sh:IRI ] .

carnet:AccessBody a sh:NodeShape ;
  sh:property [ sh:path cv:contactPoint ; sh:minCount 1 ; sh:node carnet:Contact ] .

carnet:Contact a sh:NodeShape ;
  sh:property [ sh:path [ sh:alternativePath ( vcard:hasEmail vcard:hasURL ) ] ;
                sh:minCount 1 ; sh:nodeKind sh:IRI ] .

carnet:TableGroup a sh:NodeShape ;
  sh:property [ sh:path csvw:table ; sh:minCount 1 ; sh:node carnet:Table ] ,
              [ sh:path dct:title ; sh:minCount 1 ; sh:nodeKind sh:Literal ] .

carnet:Table a sh:NodeShape ;
  sh:property [ sh:path dct:title ; sh:minCount 1 ; sh:nodeKind sh:Literal ] ,
              [ sh:path csvw:column ; sh:minCount 1 ; sh:node carnet:Column ] .

carnet:Column a sh:NodeShape ;
  sh:property [ sh:path csvw:name ; sh:minCount 1 ; sh:maxCount 1 ; sh:nodeKind sh:Literal ] ,
              [ sh:path csvw:title ; sh:minCount 1 ; sh:nodeKind sh:Literal ] ,
              [ sh:path csvw:datatype ; sh:minCount 1 ; sh:maxCount 1 ; sh:nodeKind sh:Literal ] ,
              [ sh:path dct:description ; sh:minCount 1 ; sh:nodeKind sh:Literal ] .
"""
