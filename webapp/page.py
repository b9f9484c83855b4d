"""The HTML page: "What to watch next", personalized or the static fallback, and who served it."""

from __future__ import annotations

from html import escape

from .dependency import DependencyFailure, Recommendation
from .metadata import InstanceInfo

#: The workshop's static recommendation, served when the dependency cannot answer.
FALLBACK = Recommendation(user_id=0, user_name="Valued Customer", show="I Love Lucy")

_TEMPLATE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>What to watch next</title></head>
<body>
<h1>What to watch next</h1>
<p>Hi <b class="user">{user}</b>! We recommend: <b class="show">{show}</b></p>
{diagnostic}<hr>
<p class="instance">Served by instance <code>{instance_id}</code> in <code>{az}</code> ({where})</p>
</body>
</html>
"""


def render_page(
    recommendation: Recommendation, instance: InstanceInfo, failure: DependencyFailure | None = None
) -> bytes:
    """The page for a recommendation; with ``failure`` it also says why the fallback is shown.

    Everything from the dependency is HTML-escaped: the table's content is data, not markup.
    """
    diagnostic = ""
    if failure is not None:
        diagnostic = (
            '<p class="diagnostic">Personalized recommendations are unavailable right now; '
            f"showing our pick for everyone. (dependency {escape(failure.kind)}: "
            f"{escape(failure.detail)})</p>\n"
        )
    where = instance.instance_type if instance.on_aws else "running outside AWS"
    return _TEMPLATE.format(
        user=escape(recommendation.user_name),
        show=escape(recommendation.show),
        diagnostic=diagnostic,
        instance_id=escape(instance.instance_id),
        az=escape(instance.availability_zone),
        where=escape(where),
    ).encode("utf-8")
