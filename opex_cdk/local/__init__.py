"""Local stand-ins for AWS: a moto server process and the seeding of the service's dependency.

Used by the webapp tests, the benchmark, the local game day and the deploy rehearsal, so nothing here
knows about any one of them:

- :func:`start_moto_server` / :class:`MotoServer` run ``moto_server`` on 127.0.0.1 on a free port.
- :func:`seed_dependency` creates the DynamoDB table and the SSM flag the service reads, from
  :mod:`opex_cdk.seed_data`; :func:`set_flag` flips the flag (the workshop's "emergency lever").
"""

from opex_cdk.local.moto_server import MotoServer, MotoServerError, start_moto_server
from opex_cdk.local.seed import seed_dependency, set_flag

__all__ = ["MotoServer", "MotoServerError", "seed_dependency", "set_flag", "start_moto_server"]
