"""The programs people use, over the engine: the HTTP API (:mod:`api.server`), the ``wfe``
command line (:mod:`api.cli`, which also starts the embedded dev stack) and the web console's
pages (:mod:`api.console`, served by the API). docs/architecture.md draws the layers."""
