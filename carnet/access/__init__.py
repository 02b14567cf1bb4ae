"""Authentication (patients, professionals, apps, operators) and the single policy decision point."""
