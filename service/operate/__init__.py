"""The operator's tools beside the service: replay, inspect and report, and their command line.

- ``replay/``, ``report/``: packages, one module a job (their docstrings list them);
  ``inspect``: one order's or event's outcomes and ledger.
- What they read: ``read`` (a span of a topic), ``outcomes`` (of the outcomes topic),
  ``ledger`` (the state topic), ``sources``, ``history`` and ``preview`` (what a replay
  chooses), ``connect`` (the connection arguments), ``times`` (``--since``/``--until``).
- For every ``return-handler`` command (``service/cli.py``): ``exits`` (the one table of exit
  statuses), ``terminal`` (the consoles, the settings read, how a command fails) and
  ``progress`` (the bars while a topic is read).
"""
