"""The hub's catalogue: datasets described in HealthDCAT-AP (release 8), with counts, coverage and
a quality label computed from an OMOP CDM database, served as JSON-LD and Turtle."""
