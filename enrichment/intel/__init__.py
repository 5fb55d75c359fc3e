"""Threat intelligence: STIX 2.1 bundles and TAXII 2.1 collections, indicators matched at ingest and by retro-hunt.

Modules: :mod:`.indicators` (pattern compilation and matching), :mod:`.feeds`
(bundle import and TAXII pull into :class:`store.intel.IntelStore`),
:mod:`.enricher` (the ingest enricher), :mod:`.retrohunt` (stored events vs new
indicators) and :mod:`.attack` (ATT&CK techniques, tactics, mitigations).
"""
