"""One module per console page; each has a ``router`` from ``web.console_router()`` and is
listed in ``api.console.site.PAGES`` and ``api.console.nav.NAV``."""
