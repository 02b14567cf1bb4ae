"""Screening of incoming files: every attachment is checked before anything is stored."""
