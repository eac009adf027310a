"""One Kubernetes API client for the whole process: kubeconfig if given, else in-cluster.

`KUBECONFIG` (or ~/.kube/config) wins, so tests and laptops reach plain-HTTP fakes; in a
pod the service account is used. The configuration also becomes the client library's
default, which the library's own leader election uses.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration


def api_client_from_environment() -> ApiClient:
    """An ApiClient for `$KUBECONFIG`, `~/.kube/config`, or the in-cluster account."""
    configuration = Configuration()
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if os.environ.get("KUBECONFIG") or Path(kubeconfig).exists():
        kube_config.load_kube_config(
            config_file=kubeconfig.split(os.pathsep)[0], client_configuration=configuration
        )
    else:
        kube_config.load_incluster_config(client_configuration=configuration)
    Configuration.set_default(configuration)
    return ApiClient(configuration)
