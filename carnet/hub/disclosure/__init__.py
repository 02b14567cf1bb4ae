"""Output control: statistical disclosure control of tables of aggregates, the automatic gates on
output files, and the ACRO ``results.json`` record checkers read in SACRO-Viewer."""
