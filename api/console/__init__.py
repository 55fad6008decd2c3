"""The admin console at /admin: server-rendered pages (Jinja2 templates, htmx, a little plain
JavaScript, charts as inline SVG) behind a sign-in with an admin token.

Layout, for adding a page:

- ``pages/<name>.py``: the page's routes on ``router = web.console_router()`` (under /admin;
  errors become HTML saying why). Read with ``ConsoleUser``; change things with
  ``ConsoleAction`` (it checks the CSRF token) and through ``api.actions`` (the API's own
  checks and workflow signals), never a second path.
- ``templates/<name>/page.html`` extends ``base.html``; ``_results.html`` is what the filter
  form swaps; ``_row.html`` one row (rows watching their workflow re-read themselves).
  ``_macros.html`` has the status badge, the Temporal link, the empty state, pagination.
- register it in ``site.PAGES`` and ``nav.NAV``; ``web.WORKFLOW_IDS`` and
  ``web.ENTITY_PAGES`` map an audit entity type to its workflow and its page.
"""

from api.console.site import install

__all__ = ["install"]
