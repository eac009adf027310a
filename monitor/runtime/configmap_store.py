r"""The state document in a ConfigMap, so a new leader (or a rescheduled pod) resumes it.

Same two methods as `monitor.state.FileStore`. Writes use optimistic concurrency: every
update carries the resourceVersion last read or written, so a writer that is no longer
the only one (a deposed leader, a person editing the ConfigMap) gets 409 Conflict
instead of silently overwriting — `StateConflict` tells the daemon to stop and re-read.
ConfigMaps hold at most 1 MiB, so the document is stored gzip-compressed in `binaryData`
(state of 10,000 batches: 8.9 MB of JSON, 0.55 MB packed); the engine prunes its history,
and a document approaching the limit is logged loudly. Read it by hand with
`kubectl get cm NAME -o jsonpath='{.binaryData.state\.json\.gz}' | base64 -d | gunzip`.

What a ConfigMap holds is untrusted: it is inflated at most to `MAX_DOCUMENT_BYTES` (a
small gzip bomb would otherwise take the pod past its memory limit on every start), and
an unusable one is copied, as it was, to a ConfigMap `NAME-corrupt-<time>` by `keep_aside`.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import zlib
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from monitor.runtime.state import (
    MAX_DOCUMENT_BYTES,
    CorruptState,
    Document,
    aside_stamp,
    decode,
    encode,
)

logger = logging.getLogger(__name__)

DATA_KEY = "state.json"  # read for hand-written state; saves use the packed form
PACKED_KEY = "state.json.gz"
LIMIT_BYTES = 1024 * 1024
WARN_BYTES = LIMIT_BYTES * 3 // 4


class StateConflict(RuntimeError):
    """Someone else changed the state ConfigMap since this process last read it."""


class ConfigMapStore:
    """A JSON document, gzip-packed in `binaryData["state.json.gz"]` of ConfigMap NAMESPACE/NAME."""

    def __init__(self, api_client: ApiClient, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self._api = CoreV1Api(api_client)
        self._resource_version: str | None = None
        self._held: dict[str, Any] = {}  # data and binaryData as last loaded, for keep_aside
        self.last_size = 0

    @property
    def where(self) -> str:
        return f"state ConfigMap {self.namespace}/{self.name}"

    @classmethod
    def from_reference(cls, api_client: ApiClient, reference: str) -> ConfigMapStore:
        """From the config's `state.configmap: NAMESPACE/NAME`."""
        namespace, name = reference.split("/", 1)
        return cls(api_client, namespace, name)

    def load(self) -> Document | None:
        """The document (None when there is no ConfigMap or it is empty); `CorruptState`
        when it holds something unusable; `ApiException`/network errors when unreachable."""
        response: Any  # the raw urllib3 response (`_preload_content=False`)
        try:
            response = self._api.read_namespaced_config_map(
                self.name, self.namespace, _preload_content=False
            )
        except ApiException as error:
            if error.status == 404:
                self._resource_version = None
                return None
            raise
        try:
            body = json.loads(response.data)
        except ValueError as error:
            raise CorruptState(f"the API answered with no ConfigMap: {error}") from error
        metadata = body.get("metadata") if isinstance(body, dict) else None
        if not isinstance(metadata, dict):
            raise CorruptState("the API answered with no ConfigMap")
        self._resource_version = metadata.get("resourceVersion")
        self._held = {key: body[key] for key in ("data", "binaryData") if body.get(key)}
        binary, data = body.get("binaryData") or {}, body.get("data") or {}
        if not isinstance(binary, dict) or not isinstance(data, dict):
            raise CorruptState("its data or binaryData is not a mapping")
        packed, text = binary.get(PACKED_KEY), data.get(DATA_KEY)
        if packed:
            return decode(_inflate(packed))
        if not text:
            return None
        return decode(str(text).encode("utf-8"))

    def keep_aside(self) -> str:
        """Copy what was last loaded into a new ConfigMap `NAME-corrupt-<time>`; the next
        save replaces NAME itself."""
        name = f"{self.name}-{aside_stamp()}"
        body: Any = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/name": "sla-monitor"},
                "annotations": {"sla-monitor/kept-aside-from": self.name},
            },
            **self._held,
        }
        self._api.create_namespaced_config_map(self.namespace, body, _preload_content=False)
        return f"ConfigMap {self.namespace}/{name}"

    def save(self, document: Document) -> None:
        self.save_text(encode(document))

    def save_text(self, text: str) -> None:
        packed = base64.b64encode(gzip.compress(text.encode("utf-8"), 6)).decode("ascii")
        self.last_size = len(packed)
        if self.last_size > WARN_BYTES:
            logger.warning(
                "state document is %d bytes, near the 1 MiB ConfigMap limit; "
                "lower the history retention",
                self.last_size,
            )
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/name": "sla-monitor"},
        }
        body: Any = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        body["binaryData"] = {PACKED_KEY: packed}
        response: Any
        try:
            if self._resource_version is None:
                response = self._api.create_namespaced_config_map(
                    self.namespace, body, _preload_content=False
                )
            else:
                metadata["resourceVersion"] = self._resource_version
                response = self._api.replace_namespaced_config_map(
                    self.name, self.namespace, body, _preload_content=False
                )
        except ApiException as error:
            if error.status == 409:
                self._resource_version = None
                raise StateConflict(
                    f"state ConfigMap {self.namespace}/{self.name} was changed by someone else"
                ) from error
            raise
        saved: dict[str, Any] = json.loads(response.data)
        self._resource_version = saved.get("metadata", {}).get("resourceVersion")


def _inflate(packed: str) -> bytes:
    """The gzip member in base64 `packed`, inflated to at most `MAX_DOCUMENT_BYTES + 1`
    bytes (so `decode` refuses a bigger one without ever holding it)."""
    try:
        raw = base64.b64decode(packed, validate=True)
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        data = inflater.decompress(raw, MAX_DOCUMENT_BYTES + 1)
    except (binascii.Error, zlib.error, ValueError) as error:
        raise CorruptState(f"{PACKED_KEY} is not base64 gzip: {error}") from error
    if len(data) <= MAX_DOCUMENT_BYTES and not inflater.eof:
        raise CorruptState(f"{PACKED_KEY} is truncated")
    return data
