"""Objects in an S3-compatible bucket (AWS, MinIO, R2, Ceph…) through boto3.

boto3 blocks, so every call runs in this store's own thread pool (never on the event loop, never
in the wasm workers' way). Connection pooling, timeouts and retries are set explicitly; uploads
above ``MULTIPART_THRESHOLD`` go in parts. Each object carries its SHA-256 in its metadata, so
``head`` can answer without downloading it. botocore's exceptions never leave this module.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from storage.errors import StorageUnavailable

from ..threads import Offload
from .base import ObjectInfo, ObjectNotFound
from .local import check_key

T = TypeVar("T")
Keys = list[str]  # named here: inside the class, ``list`` is the method
MULTIPART_THRESHOLD = 8 * 1024 * 1024
POOL = 32
MISSING = {"404", "NoSuchKey", "NotFound"}


class S3ObjectStore:
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        config = botocore.config.Config(
            max_pool_connections=POOL,
            connect_timeout=5,
            read_timeout=30,
            retries={"mode": "standard", "max_attempts": 3},
            signature_version="s3v4",
        )
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=config
        )
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
        )
        self._io = Offload("s3", POOL)

    def _key(self, key: str) -> str:
        check_key(key)
        return self.prefix + key

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._io.run(_guarded, fn, *args, **kwargs)

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        info = ObjectInfo.of(data)
        await self._run(
            self._client.upload_fileobj,
            io.BytesIO(data),
            self.bucket,
            self._key(key),
            ExtraArgs={"Metadata": {"sha256": info.sha256}},
            Config=self._transfer,
        )
        return info

    async def get(self, key: str) -> bytes:
        response = await self._run(self._client.get_object, Bucket=self.bucket, Key=self._key(key))
        return await self._run(response["Body"].read)

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            response = await self._run(
                self._client.head_object, Bucket=self.bucket, Key=self._key(key)
            )
        except ObjectNotFound:
            return None
        sha = response.get("Metadata", {}).get("sha256")
        if sha is None:  # written by something else: measure it
            sha = hashlib.sha256(await self.get(key)).hexdigest()
        return ObjectInfo(int(response["ContentLength"]), sha)

    async def delete(self, key: str) -> None:
        await self._run(self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def list(self, prefix: str) -> AsyncIterator[str]:
        keys = await self._run(self._list, self.prefix + prefix)
        for key in keys:
            yield key[len(self.prefix) :]

    def _list(self, full_prefix: str) -> Keys:
        paginator = self._client.get_paginator("list_objects_v2")
        keys: Keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    async def ping(self) -> None:
        try:
            await self._run(self._client.head_bucket, Bucket=self.bucket)
        except ObjectNotFound:
            raise StorageUnavailable(
                f"object store: bucket {self.bucket!r} not found (create it, or fix"
                " TIERGATE_OBJECT_STORE / TIERGATE_S3_ENDPOINT_URL)"
            ) from None

    async def close(self) -> None:
        self._io.shutdown()
        self._client.close()


def _guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in MISSING:
            raise ObjectNotFound(kwargs.get("Key", "")) from None
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        raise StorageUnavailable(f"object store: {code or 'error'} (HTTP {status})") from None
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        raise StorageUnavailable(f"object store unreachable: {exc}") from None
