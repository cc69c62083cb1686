"""Packed datasets in object storage: ``s3://``, ``gs://`` and ``azure://`` URLs, streamed by litdata.

litdata reads a split's chunks from the store and caches them on local disk. Before it starts, this module
checks that the store can be read at all, so that what goes wrong is one line naming the cause and the fix
(a missing package and the extra that installs it, no credentials, access denied, no such bucket or prefix,
an unreachable endpoint) rather than a traceback, a retry loop, or a pack reported missing when the
credentials were. It copies a split's small description files (litdata's index, the pack description, the
labels) to a local folder, says where the chunks are cached and how much of the disk they may take
(``SIMCLR_CHUNK_CACHE``, ``SIMCLR_CHUNK_CACHE_SIZE``), and gives litdata the options each store needs
(:func:`stream_options`).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from litdata.streaming import downloader as litdata_downloader

from simclr.atomic import write_bytes_atomic
from simclr.data.cache_folder import cache_folder
from simclr.data.pack_format import INDEX_FILE, INFO_FILE, LABELS_FILE, SPLIT_FOLDERS
from simclr.errors import UserError
from simclr.settings import format_size, parse_size

log = logging.getLogger("simclr")

__all__ = [
    "CHUNK_CACHE_SIZE_VARIABLE",
    "CHUNK_CACHE_VARIABLE",
    "STORES",
    "ObjectStore",
    "chunk_cache_dir",
    "chunk_cache_size",
    "describe_chunk_cache",
    "fetch_description",
    "find_remote_split",
    "follow_moved_chunk_cache",
    "is_url",
    "object_store",
    "refuse_remote_destination",
    "require_remote_split",
    "stream_options",
]

CHUNK_CACHE_VARIABLE = "SIMCLR_CHUNK_CACHE"  # where streamed chunks are cached (default: $SIMCLR_CACHE/chunks)
CHUNK_CACHE_SIZE_VARIABLE = "SIMCLR_CHUNK_CACHE_SIZE"  # how much of the disk they may take (default: litdata's)


@dataclass(frozen=True)
class ObjectStore:
    """One kind of object storage litdata reads: its URL scheme, the modules litdata imports for it, the
    ``simclr-kit`` extra that installs them, and where its client finds credentials (for the messages)."""

    scheme: str
    title: str
    extra: str
    modules: tuple[str, ...]
    packages: str  # what pip installs for the extra, for the message
    credentials: str

    def require_packages(self) -> list[ModuleType]:
        """The store's client modules; one that cannot be imported is a UserError naming the extra."""
        try:
            return [importlib.import_module(name) for name in self.modules]
        except ImportError as exc:
            raise UserError(
                f"reading {self.scheme}:// needs {self.packages} ({exc.name or exc} is missing); install it with: "
                f"pip install 'simclr-kit[{self.extra}]'"
            ) from None


STORES: dict[str, ObjectStore] = {
    store.scheme: store
    for store in (
        ObjectStore(
            "s3",
            "S3",
            "s3",
            ("boto3",),
            "boto3",
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials or an instance role",
        ),
        ObjectStore(
            "gs",
            "Google Cloud Storage",
            "gcs",
            ("google.cloud.storage",),
            "google-cloud-storage",
            "GOOGLE_APPLICATION_CREDENTIALS or 'gcloud auth application-default login'",
        ),
        ObjectStore(
            "azure",
            "Azure Blob Storage",
            "azure",
            ("azure.storage.blob", "azure.identity"),
            "azure-storage-blob and azure-identity",
            "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY, "
            "AZURE_STORAGE_SAS_TOKEN or 'az login'",
        ),
    )
}


def is_url(location: str | Path) -> bool:
    """True for a location in object storage (``s3://``, ``gs://``, ``azure://``, ...), not a local path."""
    return "://" in str(location)


def object_store(url: str) -> ObjectStore:
    """The store a URL names, with its packages installed; another scheme, or a missing package, is a
    UserError."""
    scheme = urlparse(url).scheme
    store = STORES.get(scheme)
    if store is None:
        known = ", ".join(f"{name}://" for name in STORES)
        raise UserError(f"{url}: simclr streams packed datasets from local folders and {known}; got {scheme}://")
    store.require_packages()
    return store


def refuse_remote_destination(out: Path) -> None:
    """``simclr data pack`` writes a local folder: a destination spelled as a URL (which a path turns into
    ``s3:/bucket/...``) would create a folder named after the scheme, so it is refused with the way to upload."""
    first = Path(out).parts[0] if Path(out).parts else ""
    scheme = first.removesuffix(":")
    if first.endswith(":") and scheme in STORES:
        raise UserError(
            f"simclr data pack writes a local folder, not {scheme}://; pack into one (e.g. data/NAME-packed), "
            "then upload that folder (docs/SCALING.md, 'Object storage')"
        )


def chunk_cache_dir() -> Path:
    """Where litdata caches the chunks it streams from object storage: ``$SIMCLR_CHUNK_CACHE``, else litdata's
    own ``$LITDATA_CACHE_DIR``, else ``$SIMCLR_CACHE/chunks`` (``~/.cache/simclr/chunks``)."""
    for variable in (CHUNK_CACHE_VARIABLE, "LITDATA_CACHE_DIR"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    return cache_folder() / "chunks"


def chunk_cache_size() -> int | None:
    """How many bytes the streamed chunks may take (``$SIMCLR_CHUNK_CACHE_SIZE``, e.g. ``200GB``); None leaves
    litdata's default (75% of the free disk, keeping 50 GB free where it can). litdata's own
    ``MAX_CACHE_SIZE`` overrides both."""
    text = os.environ.get(CHUNK_CACHE_SIZE_VARIABLE)
    if not text:
        return None
    try:
        return parse_size(text)
    except UserError as exc:
        raise UserError(f"{CHUNK_CACHE_SIZE_VARIABLE}: {exc}") from None


def describe_chunk_cache() -> str:
    """Where the streamed chunks go and how much they may take, for the log."""
    size = chunk_cache_size()
    if os.environ.get("MAX_CACHE_SIZE"):
        limit = f"MAX_CACHE_SIZE {os.environ['MAX_CACHE_SIZE']}"
    else:
        limit = format_size(size) if size is not None else "litdata's default: 75% of the free disk"
    return (
        f"caching the streamed chunks in {chunk_cache_dir()} (up to {limit}; "
        f"{CHUNK_CACHE_VARIABLE} and {CHUNK_CACHE_SIZE_VARIABLE} to change)"
    )


def stream_options(location: str | Path) -> dict[str, Any]:
    """What litdata's ``StreamingDataset`` takes besides the location: for a URL, the chunk cache's folder and
    size and the store's client options; nothing for a local folder (read in place)."""
    if not is_url(location):
        return {}
    store = object_store(str(location))
    _prepare_litdata(store)
    return {
        "cache_dir": str(chunk_cache_dir()),
        "max_cache_size": chunk_cache_size(),
        "storage_options": _client_options(store),
    }


def follow_moved_chunk_cache(state: dict[str, Any], cache_path: str | None, cache_dir: str | None) -> dict[str, Any]:
    """A stream's saved position (litdata's state) made to read from ``cache_path``, where this process caches
    the same split's chunks, when the chunk cache moved since the state was saved (``SIMCLR_CHUNK_CACHE``
    changed, or a requeued job runs on a node with another scratch folder). litdata refuses a state whose
    cache folder differs; the folder is a local copy, so it is taken over when the split is the same: the same
    URL and the same upload (the folder's last two parts, litdata's hash of the URL and the index's time).
    Any other state is returned as it is, for litdata to check."""
    saved = state.get("input_dir_path")
    if not (state.get("input_dir_url") and saved and cache_path) or saved == cache_path:
        return state
    if Path(saved).parts[-2:] != Path(cache_path).parts[-2:]:
        return state
    log.info("the chunk cache moved from %s to %s; the stream resumes where it was", saved, cache_path)
    return {**state, "input_dir_path": cache_path, "cache_dir_path": cache_dir}


def find_remote_split(root: str, split: str) -> str | None:
    """The URL of split ``split`` (``train``; ``test``, also ``val``) of the packed dataset at ``root``, or None
    when the store holds no such split; any other failure to read the store is a UserError."""
    for name in SPLIT_FOLDERS.get(split, (split,)):
        candidate = f"{root.rstrip('/')}/{name}"
        if _read_index(candidate) is not None:
            return candidate
    return None


def require_remote_split(root: str) -> str:
    """The training split of the packed dataset at ``root``; a missing bucket or an empty prefix is a UserError
    saying which."""
    train = find_remote_split(root, "train")
    if train is not None:
        return train
    store, bucket = object_store(root), urlparse(root).netloc
    if _bucket_missing(store, bucket):
        raise UserError(f"{root}: {store.title} has no bucket (or container) named {bucket!r}; check the URL")
    raise UserError(
        f"no packed dataset at {root} (no {root.rstrip('/')}/train/{INDEX_FILE}); check the prefix, or upload the "
        "OUT folder of 'simclr data pack' there"
    )


def fetch_description(url: str) -> Path:
    """A local folder holding the description files of the packed split at ``url`` (litdata's index, the pack
    description, the labels), under ``$SIMCLR_CACHE/remote``. The folder is named after the URL and the index,
    so a split uploaded again is read again."""
    index = _read_index(url)
    if index is None:
        raise UserError(f"no packed split at {url} (no {INDEX_FILE}); upload the OUT folder of 'simclr data pack'")
    key = hashlib.sha1(url.rstrip("/").encode() + b"\0" + index).hexdigest()[:16]
    local = cache_folder() / "remote" / key
    local.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(local / INDEX_FILE, index, durable=False)
    for name in (INFO_FILE, LABELS_FILE):
        if name == INFO_FILE or not (local / name).is_file():  # the labels are the largest; fetched once
            data = _read_object(f"{url.rstrip('/')}/{name}")
            if data is None:
                raise UserError(
                    f"{url} has {INDEX_FILE} but no {name}: the upload is incomplete, or the split was not "
                    "packed by 'simclr data pack'; upload the whole OUT folder again"
                )
            write_bytes_atomic(local / name, data, durable=False)
    return local


def _read_index(split_url: str) -> bytes | None:
    return _read_object(f"{split_url.rstrip('/')}/{INDEX_FILE}")


def _read_object(url: str) -> bytes | None:
    """The bytes of one object, read with litdata's downloader for its store (the client and credentials the
    streaming will use, with few retries); None when it does not exist."""
    store = object_store(url)
    buffer = io.BytesIO()
    with _store_errors(store, url) as missing:
        options = _client_options(store, probe=True)
        downloader = litdata_downloader.get_downloader(url.rsplit("/", 1)[0], str(cache_folder()), [], options)
        downloader.download_fileobj(url, buffer)
    return None if missing else buffer.getvalue()


def _bucket_missing(store: ObjectStore, bucket: str) -> bool:
    """Whether the bucket (container) of a URL that holds no pack is missing altogether, as far as the store's
    client can tell: S3 answers a HEAD of the bucket, the others whether the bucket exists."""
    exists = True
    with _store_errors(store, f"{store.scheme}://{bucket}") as missing:
        options = _client_options(store, probe=True)
        if store.scheme == "s3":
            (boto3,) = store.require_packages()
            boto3.client("s3", **options).head_bucket(Bucket=bucket)
        elif store.scheme == "gs":
            (storage,) = store.require_packages()
            exists = storage.Client(**options).bucket(bucket).exists()
        else:
            blob, _ = store.require_packages()
            exists = blob.BlobServiceClient(**options).get_container_client(bucket).exists()
    return bool(missing) or not exists


@contextmanager
def _store_errors(store: ObjectStore, url: str) -> Iterator[list[bool]]:
    """Runs a store client's calls: yields a list that holds True afterwards when the client said the object
    (or bucket) does not exist; any other of its errors becomes the one-line UserError of
    :func:`_storage_error`. azure-identity's own warnings (a multi-line account of every credential it tried)
    are held back meanwhile: the UserError says what to do."""
    missing: list[bool] = []
    azure_log = logging.getLogger("azure")
    level = azure_log.level
    azure_log.setLevel(max(level, logging.ERROR))
    try:
        yield missing
    except UserError:
        raise
    except Exception as exc:  # each store's client raises its own errors: sorted by what they say
        if not _is_missing(exc):
            raise _storage_error(store, url, exc) from None
        missing.append(True)
    finally:
        azure_log.setLevel(level)


# What the stores' clients call their errors (botocore, google-api-core and google-auth, azure-core and
# azure-identity), by the class names along the error's ancestry and the codes and HTTP statuses they carry.
_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound", "BlobNotFound", "ContainerNotFound", "FileNotFoundError"}
_NO_CREDENTIALS = {
    "NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError", "RefreshError",
    "CredentialUnavailableError",
}  # fmt: skip
_NO_TOKEN = "failed to retrieve a token"  # azure-identity's default chain found no credential that works
_DENIED = {
    "401", "403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "InvalidToken",
    "ExpiredToken", "AuthenticationFailed", "AuthorizationFailure", "ClientAuthenticationError",
}  # fmt: skip
_UNREACHABLE = {
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError", "ConnectionError",
    "ServiceRequestError", "TransportError", "Timeout", "RetryError", "ProxyConnectionError", "SSLError", "gaierror",
}  # fmt: skip


def _error_names(exc: BaseException) -> set[str]:
    """The class names of ``exc`` and of the errors it was raised from, with the codes and statuses they carry."""
    names: set[str] = set()
    visited: set[int] = set()  # a chain of causes may loop back on itself
    seen: BaseException | None = exc
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        names.update(cls.__name__ for cls in type(seen).__mro__)
        response = getattr(seen, "response", None)
        if isinstance(response, dict):  # botocore's ClientError
            names.add(str(response.get("Error", {}).get("Code")))
            names.add(str(response.get("ResponseMetadata", {}).get("HTTPStatusCode")))
        for attribute in ("status_code", "error_code", "code"):  # azure-core; google-api-core
            value = getattr(seen, attribute, None)
            if isinstance(value, (int, str)):
                names.add(str(value))
        if _NO_TOKEN in str(seen):
            names.add("CredentialUnavailableError")
        seen = seen.__cause__ or seen.__context__
    return names


def _is_missing(exc: BaseException) -> bool:
    names = _error_names(exc)
    return bool(names & _MISSING) and not names & (_NO_CREDENTIALS | _DENIED)


def _storage_error(store: ObjectStore, url: str, exc: BaseException) -> UserError:
    """The one-line error for a failure to read ``url``: its cause, with what the client said, and the fix."""
    names = _error_names(exc)
    said = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if names & _NO_CREDENTIALS:
        return UserError(f"no credentials for {url} ({said}); give {store.title} credentials: {store.credentials}")
    if names & _DENIED:
        return UserError(
            f"access to {url} was refused ({said}); check the credentials ({store.credentials}) and that they may "
            "read this bucket"
        )
    if names & _UNREACHABLE or isinstance(exc, OSError):
        endpoint = " and AWS_ENDPOINT_URL" if store.scheme == "s3" else ""
        return UserError(f"cannot reach {store.title} for {url} ({said}); check the network{endpoint}")
    return UserError(f"cannot read {url} ({type(exc).__name__}: {said}); check the URL and the credentials")


def _client_options(store: ObjectStore, *, probe: bool = False) -> dict[str, Any]:
    """litdata's ``storage_options`` for the store's client. Azure's client needs its account URL and
    credential spelled out (:func:`_azure_options`); the others find theirs in the environment. A ``probe``
    (reading the description files before streaming) retries little and briefly, so an unreachable endpoint
    is reported in seconds: litdata's own S3 client retries 1,000 times, Azure's waits 15 s and more between
    tries."""
    options: dict[str, Any] = _azure_options(store) if store.scheme == "azure" else {}
    if probe and store.scheme == "s3":
        botocore_config = importlib.import_module("botocore.config")
        retries = {"max_attempts": 2, "mode": "standard"}
        options["config"] = botocore_config.Config(retries=retries, connect_timeout=10, read_timeout=60)
    elif probe and store.scheme == "azure":
        options.update(retry_total=2, initial_backoff=1, increment_base=2, connection_timeout=10)
    return options


def _azure_options(store: ObjectStore) -> dict[str, Any]:
    """The account URL and credential of Azure's ``BlobServiceClient``, from the variables the ``az`` command
    reads: a connection string (an Azurite emulator's too), or an account with its key, a SAS token, or else
    azure-identity's default chain (``az login``, a managed identity, a service principal)."""
    connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        parts = dict(item.split("=", 1) for item in connection.split(";") if "=" in item)
        account = parts.get("AccountName", "")
        protocol = parts.get("DefaultEndpointsProtocol", "https")
        url = (
            parts.get("BlobEndpoint")
            or f"{protocol}://{account}.blob.{parts.get('EndpointSuffix', 'core.windows.net')}"
        )
        key, sas = parts.get("AccountKey"), parts.get("SharedAccessSignature")
        if not key and not sas:
            raise UserError("AZURE_STORAGE_CONNECTION_STRING holds no AccountKey or SharedAccessSignature; check it")
    else:
        account = os.environ.get("AZURE_STORAGE_ACCOUNT", "")
        if not account:
            raise UserError(f"azure:// needs the storage account: set {store.credentials}")
        url = f"https://{account}.blob.core.windows.net"
        key, sas = os.environ.get("AZURE_STORAGE_KEY"), os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    if key:
        return {"account_url": url, "credential": {"account_name": account, "account_key": key}}
    if sas:
        return {"account_url": f"{url}?{sas.lstrip('?')}"}
    _, identity = store.require_packages()
    return {"account_url": url, "credential": identity.DefaultAzureCredential()}


def _prepare_litdata(store: ObjectStore) -> None:
    """Process-wide litdata settings a store needs; the loader workers, forked from this process, inherit them.

    S3: litdata reads the chunks with obstore, whose client refuses plain-HTTP endpoints unless told otherwise,
    while boto3 (the same litdata's index reads) accepts them; an S3-compatible store on ``http://`` (MinIO, a
    test server) needs both. The endpoint's own scheme still decides: an ``https://`` endpoint stays TLS.
    Azure: litdata's concurrent chunk prefetch builds its Azure client without the account options the rest of
    it uses (its own TODO), so it is turned off for azure:// unless ``LITDATA_ASYNC_CHUNK_PREFETCH`` says.
    """
    if store.scheme == "s3":
        client_options = getattr(litdata_downloader, "_OBSTORE_CLIENT_OPTIONS", None)
        if isinstance(client_options, dict):
            client_options["allow_http"] = True
    elif store.scheme == "azure":
        os.environ.setdefault("LITDATA_ASYNC_CHUNK_PREFETCH", "0")
