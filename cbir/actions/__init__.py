"""The use cases: one function per job, called by the command line and the web server alike.

Each takes plain arguments and a ``Progress`` (callbacks for totals, steps, notes and skipped files) and
returns what ``--json`` prints and the HTTP API answers.
"""
