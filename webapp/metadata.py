"""Who am I? Instance metadata from IMDSv2, read once at start-up with a short timeout.

The workshop's page shows which instance answered so a reader can watch the load balancer rotate.
Reading IMDS per request would add a network call to every page; off EC2 there is no IMDS and each
probe would burn its timeout. So: one probe at start-up (≈0.3 s worst case), flags override it.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

#: Same variables botocore honours, so one setting points both at a fake IMDS (tests) or disables it.
IMDS_ENDPOINT_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
IMDS_DISABLED_ENV = "AWS_EC2_METADATA_DISABLED"
DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254"
OUTSIDE_AWS = "running outside AWS"
LOCAL = "local"


@dataclass(frozen=True)
class InstanceInfo:
    """What the page and the ``X-Instance-Id`` header say about this process's host.

    Attributes:
        instance_id: EC2 instance id, the ``--instance-id`` override, or ``local``.
        availability_zone: AZ name, the ``--availability-zone`` override, or ``local``.
        instance_type: EC2 instance type, or ``unknown``.
        on_aws: True when IMDS answered.
    """

    instance_id: str = LOCAL
    availability_zone: str = LOCAL
    instance_type: str = "unknown"
    on_aws: bool = False


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    # IMDS is link-local: an HTTP(S)_PROXY from the environment must never see these requests.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def probe_imds(endpoint: str = DEFAULT_IMDS_ENDPOINT, timeout: float = 0.3) -> dict[str, str] | None:
    """Read instance id, AZ and type from IMDSv2; None when there is no (v2) metadata service.

    Args:
        endpoint: IMDS base URL. Default: ``http://169.254.169.254``.
        timeout: per-request timeout in seconds; the token request fails fast off EC2. Default: 0.3.
    """
    opener = _no_proxy_opener()
    base = endpoint.rstrip("/")
    try:
        token_request = urllib.request.Request(
            f"{base}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with opener.open(token_request, timeout=timeout) as response:
            token = response.read().decode("ascii", "replace").strip()
        found: dict[str, str] = {}
        for key, path in (
            ("instance_id", "instance-id"),
            ("availability_zone", "placement/availability-zone"),
            ("instance_type", "instance-type"),
        ):
            request = urllib.request.Request(
                f"{base}/latest/meta-data/{path}", headers={"X-aws-ec2-metadata-token": token}
            )
            with opener.open(request, timeout=timeout) as response:
                found[key] = response.read().decode("utf-8", "replace").strip()
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return found


def resolve_instance_info(
    instance_id: str | None = None,
    availability_zone: str | None = None,
    *,
    timeout: float = 0.3,
    environ: Mapping[str, str] = os.environ,
) -> InstanceInfo:
    """Overrides first; IMDS for what they leave open; ``local`` when neither knows.

    Args:
        instance_id: ``--instance-id`` (local runs, the game day). Default: from IMDS.
        availability_zone: ``--availability-zone``. Default: from IMDS.
        timeout: IMDS timeout per request. Default: 0.3 s.
        environ: where ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` / ``AWS_EC2_METADATA_DISABLED`` are read.
    """
    found: dict[str, str] | None = None
    if (instance_id is None or availability_zone is None) and environ.get(IMDS_DISABLED_ENV, "").lower() != "true":
        found = probe_imds(environ.get(IMDS_ENDPOINT_ENV, DEFAULT_IMDS_ENDPOINT), timeout)
    found = found or {}
    return InstanceInfo(
        instance_id=instance_id or found.get("instance_id") or LOCAL,
        availability_zone=availability_zone or found.get("availability_zone") or LOCAL,
        instance_type=found.get("instance_type") or "unknown",
        on_aws=bool(found),
    )
