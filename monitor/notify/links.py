"""Where to look next: a Logs Explorer link, or `kubectl` commands without Cloud Logging.

The person who reads an alert at night should be one click (or one paste) away from the
logs of the failed Job or pod. Names come from the cluster, so they are quoted for the
Logging query language and for the shell; the caller escapes the result for Slack.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

_LOGS_EXPLORER = "https://console.cloud.google.com/logs/query"


@dataclass(frozen=True, slots=True)
class Target:
    """What the alert is about: a Job, a pod (and container), or both."""

    namespace: str
    job: str | None = None
    pod: str | None = None
    container: str | None = None
    around: datetime | None = None


def _filter_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def logs_query(target: Target, cluster: str | None) -> str:
    """A Cloud Logging filter selecting the container logs of the target."""
    lines = ['resource.type="k8s_container"']
    if cluster:
        lines.append(f"resource.labels.cluster_name={_filter_value(cluster)}")
    lines.append(f"resource.labels.namespace_name={_filter_value(target.namespace)}")
    if target.pod:
        lines.append(f"resource.labels.pod_name={_filter_value(target.pod)}")
        if target.container:
            lines.append(f"resource.labels.container_name={_filter_value(target.container)}")
    elif target.job:
        lines.append(f'labels."k8s-pod/job-name"={_filter_value(target.job)}')
    return "\n".join(lines)


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def logs_explorer_url(target: Target, project: str, cluster: str | None) -> str:
    """A Logs Explorer URL with the query and a time range around the event.

    A pod's traceback is looked at from an hour before; a Job may have run for hours.
    """
    url = f"{_LOGS_EXPLORER};query={quote(logs_query(target, cluster), safe='')}"
    if target.around is not None:
        before = timedelta(hours=1) if target.pod else timedelta(hours=6)
        start, end = target.around - before, target.around + timedelta(minutes=15)
        url += f";startTime={_utc(start)};endTime={_utc(end)}"
    return f"{url}?project={quote(project, safe='')}"


def kubectl_commands(target: Target) -> list[str]:
    """Commands to paste into a shell; every name is shell-quoted."""
    namespace = shlex.quote(target.namespace)
    commands: list[str] = []
    if target.pod:
        container = f" -c {shlex.quote(target.container)}" if target.container else ""
        commands.append(
            f"kubectl -n {namespace} logs {shlex.quote(target.pod)}{container} --timestamps"
        )
    if target.job:
        job = shlex.quote(target.job)
        commands.append(f"kubectl -n {namespace} describe job {job}")
        if not target.pod:
            commands.append(
                f"kubectl -n {namespace} logs job/{target.job} --all-containers --timestamps"
                if target.job == job
                else f"kubectl -n {namespace} logs {shlex.quote('job/' + target.job)}"
                " --all-containers --timestamps"
            )
    return commands
