"""`nmfsep explore`: a local web page of NMF's interactive figures, on a recording or on the
synthetic playground (the optional extra ``nmfsep[explore]``, which brings Flask).

- ``views``: one function per view, arrays in, numbers and pictures (as JSON) out; each calls the
  library code that ``split``, ``plot``, ``rank`` and ``demo`` use (``nmfsep.nmf``, ``rank``,
  ``figures``, ``pipeline``, ``demo``, ``evaluate``).
- ``app``: the Flask application (``create_app``): routes, sessions (one excerpt each, a bounded
  number of them), limits, JSON errors; and ``make_server``, the WSGI server the CLI runs.
- ``static/``: the page (plain HTML, CSS and JavaScript; it loads nothing from the network).

Nothing here is imported by ``nmfsep`` or ``nmfsep.cli`` until ``nmfsep explore`` runs.
"""

EXTRA_HINT = "explore needs the explore extra: pip install 'nmfsep[explore]'"
