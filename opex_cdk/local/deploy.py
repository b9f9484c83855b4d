"""Deploy rehearsal without AWS: the real CDK CLI deploys every stack of an environment into a moto server.

``make deploy-local`` (``python -m opex_cdk.local.deploy [--env dev]``):

1. starts a moto server on 127.0.0.1 (:mod:`opex_cdk.local.moto_fixes`: moto plus the fixes listed there),
   posing as the environment's account and region;
2. ``cdk synth`` (the real CLI, nag included), then ``cdk bootstrap`` and ``cdk deploy --all --method=direct``
   with ``AWS_ENDPOINT_URL`` pointing at moto: assets are published to the bootstrap bucket, stacks are created
   in the order the cloud assembly's dependencies give, the SSM-typed ``BootstrapVersion`` parameter is resolved;
3. verifies every stack against its template (:func:`verify_stack`): CREATE_COMPLETE, each template resource
   either created by moto or *reported* as a type moto's CloudFormation does not implement, every output
   resolved;
4. drives the operations the workload exists for, when their code is in the tree: the scaler handler against
   the deployed alarms and the dependency flag through the levers CLI (:mod:`opex_cdk.local.exercise`);
5. tears down (``cdk destroy --all --force``) and stops the server, on success, failure, SIGTERM or Ctrl-C.

What moto cannot do is reported, never hidden. One thing the rehearsal does on moto's behalf: moto runs a
custom resource's Lambda only inside Docker (absent here), so a ``Custom::*`` resource would leave its stack
``CREATE_IN_PROGRESS`` forever. The rehearsal answers the CloudFormation custom-resource protocol for it with
SUCCESS and no data, and lists each such resource as "answered, handler NOT run": whatever that handler
does in AWS (e.g. stripping the default security group's rules) is not rehearsed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opex_cdk.config import EnvironmentConfig, load_environment
from opex_cdk.local.moto_fixes import start_fixed_moto_server
from opex_cdk.local.moto_server import MotoServer
from opex_cdk.local.seed import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, local_client
from opex_cdk.project_context import PROJECT_ROOT, load_project_context

__all__ = ["RehearsalError", "RehearsalReport", "StackReport", "rehearse", "stacks_in_order", "verify_stack"]

CDK_CLI = PROJECT_ROOT / "node_modules" / ".bin" / "cdk"
NODE_BIN = PROJECT_ROOT / ".venv" / "node-bin"
CDK_FLAGS = ("--no-version-reporting", "--no-notices", "--ci")
#: Resource types moto's CloudFormation hands to a Lambda (custom resources).
_CUSTOM_PREFIX = "Custom::"


class RehearsalError(RuntimeError):
    """A rehearsal step failed; the message names the step and what went wrong."""


# --------------------------------------------------------------------------------------------------
# The cloud assembly
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssemblyStack:
    """One stack artifact of the cloud assembly."""

    artifact_id: str
    name: str
    template_file: Path
    dependencies: tuple[str, ...]

    def template(self) -> dict[str, Any]:
        return json.loads(self.template_file.read_text())


def stacks_in_order(assembly_dir: Path) -> list[AssemblyStack]:
    """The assembly's CloudFormation stacks, dependencies first (stable: manifest order breaks ties)."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    artifacts = manifest.get("artifacts", {})
    stacks = {
        artifact_id: AssemblyStack(
            artifact_id=artifact_id,
            name=artifact["properties"].get("stackName", artifact_id),
            template_file=assembly_dir / artifact["properties"]["templateFile"],
            dependencies=tuple(d for d in artifact.get("dependencies", []) if _is_stack(artifacts.get(d))),
        )
        for artifact_id, artifact in artifacts.items()
        if _is_stack(artifact)
    }
    ordered: list[AssemblyStack] = []
    placed: set[str] = set()
    while len(placed) < len(stacks):
        ready = [i for i, s in stacks.items() if i not in placed and set(s.dependencies) <= placed]
        if not ready:
            raise RehearsalError(f"cloud assembly: dependency cycle among {sorted(set(stacks) - placed)}")
        for artifact_id in ready:
            ordered.append(stacks[artifact_id])
            placed.add(artifact_id)
    return ordered


def _is_stack(artifact: Mapping[str, Any] | None) -> bool:
    return bool(artifact) and artifact.get("type") == "aws:cloudformation:stack"  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------------
# Verification: what moto really created, against the template
# --------------------------------------------------------------------------------------------------


@dataclass
class StackReport:
    """How one stack came out. ``problems`` empty means it passed."""

    name: str
    status: str = "NOT DEPLOYED"
    expected: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)
    unsupported: Counter[str] = field(default_factory=Counter)
    not_created_by_condition: list[str] = field(default_factory=list)
    custom_answered: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: Set when moto cannot create the stack at all (see :func:`moto_blockers`): not rehearsed, not passed.
    not_rehearsable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        total = sum(self.expected.values())
        if self.not_rehearsable:
            return [f"{self.name}: NOT REHEARSED ({total} resources): moto cannot create it"] + [
                f"    blocker: {b}" for b in self.not_rehearsable
            ]
        out = [
            f"{self.name}: {self.status}; {sum(self.created.values())}/{total} resources created by moto, "
            f"{sum(self.unsupported.values())} skipped (type not implemented by moto), "
            f"{len(self.not_created_by_condition)} not created (condition false), "
            f"{len(self.outputs)} outputs resolved"
        ]
        if self.unsupported:
            out.append(
                "    skipped-as-unsupported: " + ", ".join(f"{t} x{n}" for t, n in sorted(self.unsupported.items()))
            )
        if self.custom_answered:
            out.append(
                "    custom resources answered by the rehearsal, handler NOT run: " + ", ".join(self.custom_answered)
            )
        out.extend(f"    PROBLEM: {p}" for p in self.problems)
        return out


def moto_supported_types() -> frozenset[str]:
    """Resource types the rehearsal's moto server implements: the installed moto's model map plus the models
    :mod:`opex_cdk.local.moto_cfn_models` adds (the server registers them in :func:`moto_fixes.apply`; they are
    registered here too, so this process's map is the server's)."""
    from moto.cloudformation.parsing import get_model_map

    from opex_cdk.local import moto_cfn_models

    moto_cfn_models.register()
    return frozenset(get_model_map())


def moto_blockers(template: Mapping[str, Any], supported: frozenset[str] | None = None) -> list[str]:
    """Why moto cannot create this template at all: ``Fn::GetAtt`` of a resource whose type it does not implement.

    moto skips such a resource and then fails the whole CreateStack with HTTP 500 when an attribute of it
    is read (in a property or an output). Returns one line per offending reference; empty when none.
    """
    supported = moto_supported_types() if supported is None else supported
    resources = template.get("Resources", {})
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            target = node.get("Fn::GetAtt")
            if target is not None:
                logical_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
                kind = resources.get(logical_id, {}).get("Type", "")
                if kind and kind not in supported and not kind.startswith(_CUSTOM_PREFIX):
                    attribute = target[1] if isinstance(target, list) else str(target).split(".", 1)[-1]
                    found.add(f"Fn::GetAtt {logical_id}.{attribute} of {kind}, a type moto does not implement")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({"Resources": resources, "Outputs": template.get("Outputs", {})})
    return sorted(found)


def verify_stack(cloudformation: Any, stack: AssemblyStack, answered: set[str] | None = None) -> StackReport:
    """Compare the deployed stack in moto with its synthesized template.

    Passes when the stack is CREATE_COMPLETE, every template resource was created by moto (listed in the
    stack) unless its type is one moto does not implement or its condition is false, and every
    unconditional output has a value. Unsupported types are counted per type, so nothing is silent.
    """
    template = stack.template()
    report = StackReport(name=stack.name)
    resources: dict[str, Any] = template.get("Resources", {})
    report.expected = Counter(r["Type"] for r in resources.values())
    try:
        described = cloudformation.describe_stacks(StackName=stack.name)["Stacks"][0]
    except Exception as error:  # noqa: BLE001 - any failure here is the finding itself
        report.problems.append(f"not deployed: {error}")
        return report
    report.status = described["StackStatus"]
    if report.status != "CREATE_COMPLETE":
        report.problems.append(f"status {report.status}, expected CREATE_COMPLETE")
    listed = {}
    paginator = cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack.name):
        for summary in page["StackResourceSummaries"]:
            if summary.get("LogicalResourceId"):
                listed[summary["LogicalResourceId"]] = summary
    supported = moto_supported_types()
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        summary = listed.get(logical_id)
        if summary:  # moto lists only what it created (some models, e.g. ingress rules, carry no physical id)
            report.created[kind] += 1
            if kind.startswith(_CUSTOM_PREFIX) and logical_id in (answered or set()):
                report.custom_answered.append(f"{logical_id} ({kind})")
        elif kind not in supported and not kind.startswith(_CUSTOM_PREFIX):
            report.unsupported[kind] += 1
        elif "Condition" in resource:
            report.not_created_by_condition.append(logical_id)
        else:
            report.problems.append(f"{logical_id} ({kind}): moto implements the type but did not create it")
    outputs = {o["OutputKey"]: o.get("OutputValue") for o in described.get("Outputs") or []}
    for key, output in template.get("Outputs", {}).items():
        value = outputs.get(key)
        if value in (None, "", "None"):
            if "Condition" not in output:
                report.problems.append(f"output {key} did not resolve")
        else:
            report.outputs[key] = str(value)
    return report


# --------------------------------------------------------------------------------------------------
# Custom resources: moto cannot run their Lambdas without Docker; answer the protocol and say so
# --------------------------------------------------------------------------------------------------


class CustomResourceResponder:
    """Background thread: answers SUCCESS (no data) for every ``Custom::*`` resource of a stack being created.

    Only stacks of the assembly are touched, and every answer is recorded in :attr:`answered` so the
    report can list it as "handler NOT run".
    """

    def __init__(self, endpoint_url: str, region: str, stacks: list[AssemblyStack]) -> None:
        self._endpoint_url = endpoint_url
        self._region = region
        self._custom = {
            s.name: [
                lid for lid, r in s.template().get("Resources", {}).items() if r["Type"].startswith(_CUSTOM_PREFIX)
            ]
            for s in stacks
        }
        self._cloudformation = local_client("cloudformation", endpoint_url, region)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="custom-resource-responder", daemon=True)
        self.answered: dict[str, set[str]] = {name: set() for name in self._custom}
        self.errors: list[str] = []

    def __enter__(self) -> CustomResourceResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self._answer_pending()
            except Exception as error:  # noqa: BLE001 - keep answering; the error is reported at the end
                self.errors.append(str(error))

    def _answer_pending(self) -> None:
        for summary in self._cloudformation.list_stacks(StackStatusFilter=["CREATE_IN_PROGRESS"])["StackSummaries"]:
            name = summary["StackName"]
            for logical_id in self._custom.get(name, []):
                if logical_id not in self.answered[name] and self._respond(summary["StackId"], logical_id):
                    self.answered[name].add(logical_id)

    def _respond(self, stack_id: str, logical_id: str) -> bool:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        url = f"{self._endpoint_url}/cloudformation_{self._region}/cfnresponse?stack={stack_id}"
        body = json.dumps(
            {
                "Status": "SUCCESS",
                "StackId": stack_id,
                "LogicalResourceId": logical_id,
                "PhysicalResourceId": f"{logical_id}-not-run-locally",
                "Data": {},
            }
        ).encode()
        # Signed, so moto routes it to CloudFormation in the stack's region (unsigned it guesses us-east-1).
        request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": "application/json"})
        SigV4Auth(Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY), "cloudformation", self._region).add_auth(
            request
        )
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, data=body, method="PUT", headers=dict(request.headers)), timeout=10
            ) as response:
                response.read()
            return True
        except OSError:
            return False  # the resource is not registered yet (moto registers it mid-create); retry next tick


# --------------------------------------------------------------------------------------------------
# The CLI
# --------------------------------------------------------------------------------------------------


def cli_environment(endpoint_url: str, config: EnvironmentConfig) -> dict[str, str]:
    """Environment for the CDK CLI (and any child) aimed at moto, never at AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no real profile leaks in
    env.update(
        {
            "PATH": f"{NODE_BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "AWS_ENDPOINT_URL": endpoint_url,
            # The CLI hands CloudFormation an https URL of the template built from the S3 endpoint; moto reads
            # the bucket from the host unless it is "localhost" (then from the path). Only a string: never fetched.
            "AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION": endpoint_url.replace("127.0.0.1", "localhost"),
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
            "AWS_REGION": config.region,
            "AWS_DEFAULT_REGION": config.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "CDK_DISABLE_CLI_TELEMETRY": "1",
            "CDK_DISABLE_VERSION_CHECK": "1",
            "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
        }
    )
    return env


def run_cli(args: list[str], env: Mapping[str, str], *, timeout: float, log: Any) -> str:
    """Run ``cdk <args>`` in its own process group; kill the group on timeout, error or interrupt."""
    command = [str(CDK_CLI), *args, *CDK_FLAGS]
    print(f"$ cdk {' '.join(args)}", file=log, flush=True)
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except BaseException:
        _kill_group(process)
        raise
    print(output, file=log, flush=True)
    if process.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise RehearsalError(f"cdk {args[0]} failed (exit {process.returncode}):\n{tail}")
    return output


def _kill_group(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


# --------------------------------------------------------------------------------------------------
# The rehearsal
# --------------------------------------------------------------------------------------------------


@dataclass
class RehearsalReport:
    """Everything the rehearsal found, in order."""

    environment: str
    endpoint_url: str | None = None
    server_pid: int | None = None
    stacks: list[StackReport] = field(default_factory=list)
    exercises: list[tuple[str, str, bool | None]] = field(default_factory=list)  # (name, detail, passed/None=not run)
    teardown: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and bool(self.stacks)
            and all(s.ok for s in self.stacks)
            and all(passed is not False for _, _, passed in self.exercises)
        )

    def render(self) -> str:
        lines = [f"deploy rehearsal of '{self.environment}' against moto:"]
        for stack in self.stacks:
            lines.extend(stack.lines())
        for name, detail, passed in self.exercises:
            mark = {True: "PASS", False: "FAIL", None: "NOT RUN"}[passed]
            lines.append(f"{mark:7} {name}: {detail}")
        lines.extend(f"teardown: {t}" for t in self.teardown)
        lines.extend(f"ERROR: {e}" for e in self.errors)
        lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))
        rehearsed = [st for st in self.stacks if not st.not_rehearsable]
        skipped = len(self.stacks) - len(rehearsed)
        not_run = sum(1 for _, _, passed in self.exercises if passed is None)
        verdict = "PASS" if self.ok else "FAIL"
        lines.append(
            f"RESULT: {verdict} for {len(rehearsed)} of {len(self.stacks)} stacks deployed and verified in moto"
            + (f"; {skipped} NOT REHEARSED (moto cannot create them, see blockers)" if skipped else "")
            + (f"; {not_run} exercise(s) NOT RUN" if not_run else "")
        )
        return "\n".join(lines)


@contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into KeyboardInterrupt so every ``finally`` runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    # A shell without job control starts background jobs with SIGINT ignored; take it back so `kill -INT`
    # (and Ctrl-C) always reach the cleanup.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


@contextmanager
def _timed(report: RehearsalReport, name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        report.timings[name] = time.monotonic() - started


def rehearse(
    *,
    env_name: str | None = None,
    assembly_dir: Path | None = None,
    workdir: Path | None = None,
    exercise: bool = True,
    log: Any = None,
    deploy_timeout: float = 300.0,
) -> RehearsalReport:
    """Run the whole rehearsal and return its report (never leaves a server or CLI process behind).

    Args:
        env_name: environment from cdk.json. Default: the context's ``env`` (``dev``).
        assembly_dir: an already synthesized cloud assembly of that environment. Default: synthesize
            with ``cdk synth`` into ``workdir``.
        workdir: where the assembly, the moto log and the CLI log go. Default: a temporary directory.
        exercise: drive the scaler and the levers after the deploy. Default: True.
        log: file object for the CLI's output. Default: ``workdir/cli.log``.
        deploy_timeout: seconds allowed for ``cdk deploy --all``. Default: 300.
    """
    context = load_project_context()
    config = load_environment(context, env_name)
    report = RehearsalReport(environment=config.name)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="deploy-local-"))
    workdir.mkdir(parents=True, exist_ok=True)
    own_log = log is None
    log = open(workdir / "cli.log", "a") if own_log else log  # noqa: SIM115 - closed in finally
    server: MotoServer | None = None
    assembly: Path | None = None
    try:
        with _terminate_on_sigterm():
            with _timed(report, "moto start"):
                server = start_fixed_moto_server(
                    env={**os.environ, "MOTO_ACCOUNT_ID": config.account}, log_path=str(workdir / "moto.log")
                )
            report.endpoint_url, report.server_pid = server.endpoint_url, server.process.pid
            env = cli_environment(server.endpoint_url, config)
            try:
                assembly = _deploy(config, server, env, report, assembly_dir, workdir, log, deploy_timeout)
                if exercise:
                    from opex_cdk.local.exercise import run_exercises

                    with _timed(report, "exercises"):
                        not_rehearsed = {r.name for r in report.stacks if r.not_rehearsable}
                        report.exercises.extend(
                            run_exercises(config, server.endpoint_url, assembly, env, not_rehearsed=not_rehearsed)
                        )
            finally:
                if assembly is not None:
                    with _timed(report, "teardown"):
                        _teardown(config, server, env, assembly, report, log)
    except RehearsalError as error:
        report.errors.append(str(error))
    except KeyboardInterrupt:
        report.errors.append("interrupted: stopped the moto server and every CLI process")
        raise
    finally:
        if server is not None:
            server.stop()
        if own_log:
            log.close()
    return report


def _deploy(
    config: EnvironmentConfig,
    server: MotoServer,
    env: Mapping[str, str],
    report: RehearsalReport,
    assembly_dir: Path | None,
    workdir: Path,
    log: Any,
    deploy_timeout: float,
) -> Path:
    if assembly_dir is None:
        assembly_dir = workdir / "cdk.out"
        with _timed(report, "cdk synth"):
            run_cli(
                ["synth", "--quiet", "-c", f"env={config.name}", "-o", str(assembly_dir)], env, timeout=600, log=log
            )
    stacks = stacks_in_order(assembly_dir)
    if not stacks:
        raise RehearsalError(f"cloud assembly {assembly_dir} holds no stacks")
    app = ["--app", str(assembly_dir)]
    with _timed(report, "cdk bootstrap"):
        run_cli(["bootstrap", f"aws://{config.account}/{config.region}", *app], env, timeout=120, log=log)
    cloudformation = local_client("cloudformation", server.endpoint_url, config.region)
    supported = moto_supported_types()
    blocked: dict[str, list[str]] = {}
    ssm = local_client("ssm", server.endpoint_url, config.region)
    for stack in stacks:  # dependency order: a stack needing a blocked one is blocked too
        reasons = moto_blockers(stack.template(), supported)
        reasons += _missing_ssm_parameters(ssm, stack.template())
        reasons += [f"depends on {d}, which moto cannot create" for d in stack.dependencies if d in blocked]
        if reasons:
            blocked[stack.artifact_id] = reasons
    deployable = [s for s in stacks if s.artifact_id not in blocked]
    with CustomResourceResponder(server.endpoint_url, config.region, deployable) as responder:
        with _timed(report, "cdk deploy"):
            try:
                run_cli(
                    [
                        "deploy",
                        *(s.artifact_id for s in deployable),
                        "--exclusively",
                        "--method=direct",
                        "--require-approval",
                        "never",
                        "--concurrency",
                        "4",
                        *app,
                    ],
                    env,
                    timeout=deploy_timeout,
                    log=log,
                )
            except RehearsalError as error:
                report.errors.append(str(error))
    report.errors.extend(f"custom-resource responder: {e}" for e in responder.errors[:3])
    for stack in stacks:
        if stack.artifact_id in blocked:
            stack_report = StackReport(name=stack.name, not_rehearsable=blocked[stack.artifact_id])
            stack_report.expected = Counter(r["Type"] for r in stack.template().get("Resources", {}).values())
            report.stacks.append(stack_report)
        else:
            report.stacks.append(verify_stack(cloudformation, stack, responder.answered.get(stack.name)))
    return assembly_dir


def _missing_ssm_parameters(ssm: Any, template: Mapping[str, Any]) -> list[str]:
    """SSM-typed template parameters whose SSM parameter moto does not hold: CreateStack would fail (HTTP 500).

    In a real account AWS publishes these under ``/aws/service/...``; moto holds only what was put there (the
    bootstrap version) and what ``moto_fixes`` publishes (the Powertools layer of the installed version), so any
    other such stack is reported, not faked.
    """
    missing = []
    for key, parameter in template.get("Parameters", {}).items():
        if str(parameter.get("Type", "")).startswith("AWS::SSM::Parameter::Value<") and "Default" in parameter:
            try:
                ssm.get_parameter(Name=parameter["Default"])
            except ssm.exceptions.ParameterNotFound:
                missing.append(
                    f"template parameter {key} reads SSM parameter {parameter['Default']}, which moto does not hold"
                )
    return missing


def _teardown(
    config: EnvironmentConfig,
    server: MotoServer,
    env: Mapping[str, str],
    assembly: Path,
    report: RehearsalReport,
    log: Any,
) -> None:
    if not server.running:
        report.teardown.append("moto server already gone (interrupted); its state went with it")
        return
    stacks = stacks_in_order(assembly)
    try:
        ids = [s.artifact_id for s in stacks]
        run_cli(["destroy", *ids, "--exclusively", "--force", "--app", str(assembly)], env, timeout=180, log=log)
        report.teardown.append("cdk destroy: every stack deleted")
        return
    except RehearsalError as error:
        report.teardown.append(f"cdk destroy failed: {error.args[0].splitlines()[-1]}")
    # What the CLI could not delete: try each remaining stack through the API, dependents first, and say
    # which ones moto refuses. The server's state goes when it stops, so nothing outlives the run either way.
    cloudformation = local_client("cloudformation", server.endpoint_url, config.region)
    try:
        present = {st["StackName"] for st in cloudformation.describe_stacks()["Stacks"]}
    except Exception as error:  # noqa: BLE001 - moto failing to list is a finding, not a reason to crash teardown
        report.teardown.append(f"moto could not list the stacks left ({type(error).__name__}: {error})"[:300])
        report.teardown.append("the moto server is stopped next: everything it held is discarded")
        return
    deleted = []
    for stack in reversed(stacks):
        if stack.name not in present:
            continue
        try:
            cloudformation.delete_stack(StackName=stack.name)
            cloudformation.describe_stacks(StackName=stack.name)
        except cloudformation.exceptions.ClientError as error:
            if "does not exist" in str(error):
                deleted.append(stack.name)
            else:
                report.teardown.append(f"{stack.name}: NOT DELETED by moto: {error.response['Error']['Message']}")
            continue
        report.teardown.append(f"{stack.name}: NOT DELETED by moto (still listed after DeleteStack)")
    if deleted:
        report.teardown.append(f"deleted through the CloudFormation API on a second attempt: {', '.join(deleted)}")
    report.teardown.append("the moto server is stopped next: everything it held is discarded")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m opex_cdk.local.deploy [--env NAME] [--workdir DIR] [--no-exercise]``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=None, help="environment from cdk.json (default: dev)")
    parser.add_argument("--workdir", type=Path, default=PROJECT_ROOT / "deploy-local-report")
    parser.add_argument("--no-exercise", action="store_true", help="deploy and verify only")
    args = parser.parse_args(argv)
    try:
        report = rehearse(env_name=args.env, workdir=args.workdir, exercise=not args.no_exercise)
    except KeyboardInterrupt:
        print("deploy-local: interrupted; moto server and CLI processes stopped", file=sys.stderr)
        return 130
    print(report.render())
    print(f"(CLI output: {args.workdir / 'cli.log'}, moto log: {args.workdir / 'moto.log'})")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
