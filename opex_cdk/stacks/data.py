"""The Data stack: the stateful dependency (table + seed items + flag), deployed before the app."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from opex_cdk.config import EnvironmentConfig
from opex_cdk.constructs import RecommendationDependency


class DataStack(Stack):
    """Holds one `RecommendationDependency`. Termination protection, RETAIN and deletion protection in
    production: stateful resources live apart from the app so an app change can never replace them."""

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            id_,
            description=f"opex-cdk {config.name}: recommendation table, seed items, emergency-lever flag",
            termination_protection=config.production,
            **kwargs,
        )
        self.dependency = RecommendationDependency(
            self,
            "Dependency",
            table_name=config.data.table_name,
            flag_parameter_name=config.data.flag_parameter_name,
            retain=config.production,
        )
        self.table = self.dependency.table
        self.flag_parameter = self.dependency.flag_parameter
        CfnOutput(self, "TableName", value=self.table.table_name, description="The recommendation table")
        CfnOutput(
            self, "FlagName", value=self.flag_parameter.parameter_name, description="The emergency-lever parameter"
        )
