"""Packaging detail pyproject.toml cannot express: Lambda handlers and the service ship in the wheel.

A project that pip-installs opex-cdk synthesizes our constructs, so the Lambda code (`lambda/`) and
the service (`webapp/`) must travel inside the package; `opex_cdk.assets` finds them there, or in
the source tree when running from a checkout.
"""

from pathlib import Path

from setuptools import find_packages, setup

_ASSETS = {"opex_cdk._assets.lambda": "lambda", "opex_cdk._assets.webapp": "webapp"}
_PRESENT = {package: folder for package, folder in _ASSETS.items() if (Path(__file__).parent / folder).is_dir()}

setup(
    packages=[*find_packages(include=["opex_cdk", "opex_cdk.*"]), *_PRESENT],
    package_dir=_PRESENT,
    package_data={
        "opex_cdk": ["py.typed", "**/*.yaml", "**/*.toml", "**/*.json"],
        "opex_cdk._assets.lambda": ["*/*.py"],
    },
)
