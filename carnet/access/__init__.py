"""The caller (principal.py), the FHIR engine's access hook (enforce.py) and the access CLIs.

Authentication lives in carnet/authn, the policy decision point in carnet/policy.
"""
