"""The analyst console: web pages and REST API over the store, plus the CLI.

:mod:`console.app` builds the Flask application (``create_app``); the web
pages live in :mod:`console.views`, the REST API in :mod:`console.api`, the
library functions both call in :mod:`console.services`.  This package module
imports nothing, so the CLI starts without loading Flask.
"""
