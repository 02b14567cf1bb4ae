"""Tamper-evident audit log: events, Merkle tree, signed checkpoints, proofs, the patient's view."""
