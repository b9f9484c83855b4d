"""The recommendation service that the app tier ships to its EC2 instances.

A rebuild of the Well-Architected "Health Checks and Dependencies" workshop server: ``GET /`` shows a
TV recommendation read from DynamoDB and degrades to a static one (still 200) when the dependency
fails; ``GET /healthcheck`` is a deep check for the load balancer. Standard library + boto3 only, so
the instance needs nothing else: ``python -m webapp --port 80 --region us-east-2``.
"""

__version__ = "1.0.0"
