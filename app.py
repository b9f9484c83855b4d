#!/usr/bin/env python3
"""Entry point: pick the environment from context (`-c env=NAME`, default dev) and build its stacks.

Config errors stop here with one line on stderr and exit code 2, before any construct exists.
"""

from __future__ import annotations

import sys

from aws_cdk import App

from opex_cdk.config import ConfigError, load_environment
from opex_cdk.environment import build_environment, build_pipeline
from opex_cdk.project_context import load_project_context


class _AppContext:
    """Read-only view of the App's context (CLI values, cdk.json and cdk.context.json merged)."""

    def __init__(self, app: App) -> None:
        self._app = app

    def get(self, key: str, default: object = None) -> object:
        value = self._app.node.try_get_context(key)
        return default if value is None else value


def main() -> int:
    app = App(context=load_project_context())
    context = _AppContext(app)
    try:
        config = load_environment(context)  # type: ignore[arg-type]
        if config.pipeline.enabled:  # the pipeline deploys the environments as its stages
            build_pipeline(app, config, context)  # type: ignore[arg-type]
        else:
            build_environment(app, config)
    except ConfigError as error:
        print(f"opex-cdk: configuration error: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
