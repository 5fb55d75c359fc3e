"""Compliance: security-level controls, evidence from live data, reports and their integrity."""
