"""What an app-tier instance runs at boot: the install script, the systemd unit, the CloudWatch agent config.

Pure functions over :class:`ServiceInstall`, so each piece is tested as text without synthesizing
anything; `MultiAzAppTier` puts them into the launch template's user data.

Python on the instance: the service needs Python >= 3.10, and Amazon Linux 2023's ``python3`` is 3.9,
whose ``python3-boto3`` package therefore cannot serve it. So the script installs the OS's
``python3.11`` (from the AL2023 repositories, which are S3 buckets reached through the VPC's S3
gateway endpoint, no internet), creates a venv and installs boto3 pinned to the version the project
tests with; that ``pip install`` reaches PyPI through the NAT gateway. Boot therefore depends on
PyPI being reachable; a failure makes the instance signal failure to CloudFormation (the deployment
rolls back) instead of joining the fleet half-installed.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

SERVICE_NAME = "recommendation"
#: Where the CloudWatch agent listens for EMF documents (its ``logs.metrics_collected.emf`` default).
EMF_ENDPOINT = "udp://127.0.0.1:25888"
#: Namespace of the agent's host metrics (memory, disk): the agent's own default.
HOST_METRICS_NAMESPACE = "CWAgent"
#: OS packages, all from the Amazon Linux 2023 repositories.
PACKAGES = ("python3.11", "python3.11-pip", "amazon-cloudwatch-agent", "aws-cfn-bootstrap", "logrotate")
AGENT_CONFIG_PATH = "/opt/aws/amazon-cloudwatch-agent/etc/opex-cdk.json"
AGENT_CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"


def _tested_boto3() -> str:
    try:
        return f"boto3=={version('boto3')}"
    except PackageNotFoundError:  # pragma: no cover - boto3 is a dependency of the project
        return "boto3"


@dataclass(frozen=True)
class ServiceInstall:
    """Everything the boot script needs to know. Values may be CDK tokens (resolved by CloudFormation).

    :param region: AWS region of the table and parameter.
    :param table_name: DynamoDB table the service reads.
    :param flag_parameter_name: SSM parameter of the emergency lever.
    :param service_port: port the service listens on (below 1024 the unit grants CAP_NET_BIND_SERVICE).
    :param log_group_name: log group for the service's JSON log lines.
    :param metrics_log_group_name: log group the EMF documents go to (metrics are extracted there).
    :param boto3_requirement: pip requirement for boto3. Default: the version installed here (tested).
    :param python: interpreter package and command. Default: ``python3.11``.
    :param user: the unprivileged system user the service runs as. Default: ``recommendation``.
    :param install_dir: where the code and venv live. Default: ``/opt/recommendation``.
    :param log_dir: where the service writes its log file. Default: ``/var/log/recommendation``.
    :param stop_timeout_seconds: how long systemd waits after SIGTERM: the service drains for 10 s, and
        its supervisor (one worker per CPU by default) SIGKILLs workers still running 3 s after that.
        Default: 20.
    :param startup_timeout_seconds: how long boot waits for the service to answer on its port. Default: 60.
    """

    region: str
    table_name: str
    flag_parameter_name: str
    service_port: int
    log_group_name: str
    metrics_log_group_name: str
    boto3_requirement: str = _tested_boto3()
    python: str = "python3.11"
    user: str = SERVICE_NAME
    install_dir: str = "/opt/recommendation"
    log_dir: str = "/var/log/recommendation"
    stop_timeout_seconds: int = 20
    startup_timeout_seconds: int = 60

    @property
    def app_dir(self) -> str:
        """Holds the ``webapp`` package (the asset's contents)."""
        return f"{self.install_dir}/app"

    @property
    def venv_dir(self) -> str:
        return f"{self.install_dir}/venv"

    @property
    def archive_path(self) -> str:
        """Where the asset zip is downloaded to."""
        return f"{self.install_dir}/webapp.zip"

    @property
    def log_file(self) -> str:
        return f"{self.log_dir}/service.log"

    @property
    def unit_path(self) -> str:
        return f"/etc/systemd/system/{SERVICE_NAME}.service"


def service_command(s: ServiceInstall) -> list[str]:
    """The service's command line (``python -m webapp ...``) as the unit runs it."""
    return [
        f"{s.venv_dir}/bin/python",
        "-m",
        "webapp",
        "--host",
        "0.0.0.0",
        "--port",
        str(s.service_port),
        "--region",
        s.region,
        "--table",
        s.table_name,
        "--flag-parameter",
        s.flag_parameter_name,
        "--log-file",
        s.log_file,
        "--emf-endpoint",
        EMF_ENDPOINT,
        "--emf-log-group",
        s.metrics_log_group_name,
    ]


def systemd_unit(s: ServiceInstall) -> str:
    """The service's unit: non-root, restarted always, stopped with SIGTERM (the service drains)."""
    lines = [
        "[Unit]",
        "Description=Recommendation service (opex-cdk webapp)",
        "After=network-online.target amazon-cloudwatch-agent.service",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={s.user}",
        f"Group={s.user}",
        f"WorkingDirectory={s.app_dir}",
        f"Environment=PYTHONPATH={s.app_dir}",
        "Environment=PYTHONUNBUFFERED=1",
        f"ExecStart={' '.join(service_command(s))}",
        "Restart=always",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={s.stop_timeout_seconds}",
        # Hardening: the service needs nothing but its log directory and the network.
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        f"ReadWritePaths={s.log_dir}",
    ]
    if s.service_port < 1024:
        # A privileged port without root: grant exactly the one capability.
        lines += ["AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"]
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def cloudwatch_agent_config(s: ServiceInstall) -> dict[str, Any]:
    """The agent ships the service's log file and its EMF metrics, and reports memory and disk use."""
    return {
        "agent": {"metrics_collection_interval": 60, "run_as_user": "cwagent"},
        "metrics": {
            "namespace": HOST_METRICS_NAMESPACE,
            "append_dimensions": {
                "AutoScalingGroupName": "${aws:AutoScalingGroupName}",
                "InstanceId": "${aws:InstanceId}",
            },
            "aggregation_dimensions": [["AutoScalingGroupName"]],
            "metrics_collected": {
                "mem": {"measurement": ["mem_used_percent"]},
                "disk": {"measurement": ["used_percent"], "resources": ["/"], "drop_device": True},
            },
        },
        "logs": {
            "force_flush_interval": 5,
            "logs_collected": {
                "files": {
                    "collect_list": [
                        {
                            "file_path": s.log_file,
                            "log_group_name": s.log_group_name,
                            "log_stream_name": "{instance_id}",
                        }
                    ]
                }
            },
            # EMF documents arrive on udp/tcp 25888 and go to the group named in each document.
            "metrics_collected": {"emf": {}},
        },
    }


def logrotate_config(s: ServiceInstall) -> str:
    """Keep the log file bounded; copytruncate because the service keeps the file open (append mode)."""
    return (
        f"{s.log_dir}/*.log {{\n  daily\n  maxsize 100M\n  rotate 3\n  missingok\n  notifempty\n"
        "  compress\n  copytruncate\n}\n"
    )


def _write_file(path: str, content: str, marker: str) -> str:
    # Quoted heredoc: the shell expands nothing inside (CloudFormation has already substituted tokens).
    return f"cat > {path} <<'{marker}'\n{content.rstrip(chr(10))}\n{marker}"


def prepare_commands(s: ServiceInstall) -> list[str]:
    """Before the asset download: packages, the service user, directories."""
    return [
        "set -euo pipefail",
        f"dnf install -y {' '.join(PACKAGES)}",
        f"id -u {s.user} >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin {s.user}",
        f"mkdir -p {s.install_dir} {s.log_dir}",
        f"chown {s.user}:{s.user} {s.log_dir}",
    ]


def install_commands(s: ServiceInstall) -> list[str]:
    """After the asset download: unpack, venv, unit, agent, start, and wait until the service answers."""
    port = s.service_port
    return [
        f"rm -rf {s.app_dir} && mkdir -p {s.app_dir}/webapp",
        f"{s.python} -m zipfile -e {s.archive_path} {s.app_dir}/webapp",
        f"{s.python} -m venv {s.venv_dir}",
        f"{s.venv_dir}/bin/pip install --no-cache-dir --disable-pip-version-check {shlex.quote(s.boto3_requirement)}",
        _write_file(s.unit_path, systemd_unit(s), "UNIT"),
        _write_file(AGENT_CONFIG_PATH, json.dumps(cloudwatch_agent_config(s), indent=2), "AGENT"),
        _write_file(f"/etc/logrotate.d/{SERVICE_NAME}", logrotate_config(s), "ROTATE"),
        f"{AGENT_CTL} -a fetch-config -m ec2 -s -c file:{AGENT_CONFIG_PATH}",
        "systemctl daemon-reload",
        f"systemctl enable --now {SERVICE_NAME}.service",
        # Any HTTP answer proves the process serves (the deep check may say 503 if the dependency is down).
        f"for _ in $(seq 1 {s.startup_timeout_seconds}); do "
        f"curl -s -o /dev/null --max-time 2 http://127.0.0.1:{port}/healthcheck && exit 0; sleep 1; done",
        f"echo 'service did not answer on port {port} within {s.startup_timeout_seconds} s' >&2",
        "exit 1",
    ]
