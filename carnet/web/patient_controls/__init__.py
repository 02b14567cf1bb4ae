"""The patient's controls in the portal: who sees what, access history, alerts, representatives,
my data and closing the space (docs/web.md, "The patient's controls")."""
