"""Compliance: security-level reports and smart-city maturity evidence, computed from live data.

The control catalogue is data (``compliance/catalogue/*.yml``); every automatic control names a
registered evidence query (:mod:`compliance.evidence`) that the engine (:mod:`compliance.engine`)
runs over the store, the system register and the compliance records for one period.  Reports
(:mod:`compliance.reports`) are rendered to HTML and PDF (:mod:`compliance.render`), archived with
a manifest whose hash is chained into the audit log (:mod:`compliance.archive`), and the data
behind them can be exported in open formats (:mod:`compliance.export`).
"""
