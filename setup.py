"""Packaging detail pyproject.toml cannot express: Lambda handlers and the service ship in the wheel.

A project that pip-installs opex-cdk synthesizes our constructs, so the Lambda code (`lambda/`) and
the service (`webapp/`) must travel inside the package; `opex_cdk.assets` finds them there, or in
the source tree when running from a checkout.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["opex_cdk", "opex_cdk.*"]), "opex_cdk._assets.lambda", "opex_cdk._assets.webapp"],
    package_dir={"opex_cdk._assets.lambda": "lambda", "opex_cdk._assets.webapp": "webapp"},
    package_data={"opex_cdk": ["py.typed", "**/*.yaml", "**/*.toml", "**/*.json"], "opex_cdk._assets.lambda": ["*/*.py"]},
)
