"""Enrichment: the system register (assets, security levels) and threat intel."""
