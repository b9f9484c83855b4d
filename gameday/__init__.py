"""Game day on one machine: the workshop's chaos lab rehearsed locally with real processes, measured.

``python -m gameday`` (``make gameday``) starts a moto server seeded like the Data stack, three
``webapp`` processes (one per "AZ"), each behind its own fault proxy, and HAProxy configured from the
synthesized target group; it drives the workshop's steps under a fixed-rate load, lets the healer's
real decision function pick the instance to replace, and writes ``gameday-report/``. See docs/gameday.md.
"""
