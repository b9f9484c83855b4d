"""Read a synthesized cloud assembly (``cdk.out``) into plain Python: stacks, templates, construct metadata.

Both the Well-Architected pack (at synth time) and the ORR evaluator (after synth) judge the app from
what CloudFormation will receive, so they read the same files: ``manifest.json`` (and the manifests of
nested Stage assemblies), each stack's template, and its metadata file, which maps every construct
path to its metadata (logical ids, acknowledged rules, our own markers).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACKNOWLEDGED_RULES = "aws:cdk:acknowledged-rules"
LOGICAL_ID = "aws:cdk:logicalId"


@dataclass
class StackTemplate:
    """One synthesized stack: its CloudFormation name, template and construct metadata by path."""

    name: str
    artifact_id: str
    template_path: Path
    template: dict[str, Any]
    metadata: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    paths_by_logical_id: dict[str, str] = field(default_factory=dict)
    termination_protection: bool = False

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources") or {}

    def construct_path(self, logical_id: str) -> str:
        """The construct path (no leading slash) of a resource, e.g. ``opex-dev-data/Table/Resource``."""
        path = self.paths_by_logical_id.get(logical_id)
        return path.lstrip("/") if path else f"{self.artifact_id}/{logical_id}"

    def acknowledgment(self, construct_path: str, rule_id: str) -> str | None:
        """The reason ``rule_id`` is acknowledged on ``construct_path`` or an ancestor in this stack, if it is."""
        parts = ("/" + construct_path.lstrip("/")).split("/")
        for end in range(len(parts), 1, -1):
            for entry in self.metadata.get("/".join(parts[:end]), []):
                if entry.get("type") != ACKNOWLEDGED_RULES or not isinstance(entry.get("data"), dict):
                    continue
                for key, reason in entry["data"].items():
                    if key.split("::")[-1] == rule_id:
                        return str(reason)
        return None

    def markers(self, construct_path: str, metadata_type: str) -> list[Any]:
        """Data of every ``metadata_type`` entry on ``construct_path`` and its ancestors in this stack."""
        parts = ("/" + construct_path.lstrip("/")).split("/")
        found = []
        for end in range(len(parts), 1, -1):
            found += [
                e.get("data") for e in self.metadata.get("/".join(parts[:end]), []) if e.get("type") == metadata_type
            ]
        return found


def _load(directory: Path, artifact_id: str, artifact: dict[str, Any]) -> StackTemplate:
    props = artifact.get("properties") or {}
    template_path = directory / props["templateFile"]
    metadata: dict[str, list[dict[str, Any]]] = dict(artifact.get("metadata") or {})
    extra = artifact.get("additionalMetadataFile")
    if extra and (directory / extra).is_file():
        metadata.update(json.loads((directory / extra).read_text()))
    paths = {}
    for path, entries in metadata.items():
        for entry in entries:
            if entry.get("type") == LOGICAL_ID and isinstance(entry.get("data"), str):
                paths[entry["data"]] = path
    return StackTemplate(
        name=props.get("stackName") or artifact.get("displayName") or artifact_id,
        artifact_id=artifact_id,
        template_path=template_path,
        template=json.loads(template_path.read_text()),
        metadata=metadata,
        paths_by_logical_id=paths,
        termination_protection=bool(props.get("terminationProtection")),
    )


def read_assembly(directory: str | Path) -> list[StackTemplate]:
    """Every stack of the assembly in ``directory``, nested Stage assemblies included.

    Raises FileNotFoundError naming the directory when it holds no ``manifest.json`` (run synth first).
    """
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: synthesize the app first (make synth)")
    manifest = json.loads(manifest_path.read_text())
    stacks: list[StackTemplate] = []
    for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
        if artifact.get("type") == "aws:cloudformation:stack":
            stacks.append(_load(directory, artifact_id, artifact))
        elif artifact.get("type") == "cdk:cloud-assembly":
            nested = (artifact.get("properties") or {}).get("directoryName")
            if nested:
                stacks += read_assembly(directory / nested)
    return stacks


def read_templates(template_paths: Iterable[str]) -> list[StackTemplate]:
    """The stacks whose templates are ``template_paths`` (what a validation plugin is handed)."""
    wanted = {Path(p).resolve() for p in template_paths}
    stacks: list[StackTemplate] = []
    for directory in sorted({p.parent for p in wanted}):
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            continue
        manifest = json.loads(manifest_path.read_text())
        for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            if (directory / (artifact.get("properties") or {}).get("templateFile", "")).resolve() in wanted:
                stacks.append(_load(directory, artifact_id, artifact))
    return stacks
