"""Where a prediction waits and lives for a while: Redis, under
``<DRAMATIQ_NAMESPACE>:predict:``, every key expiring after PREDICT_TTL_SECONDS. Nothing
here touches a disk, and nothing is kept unless the user saves it (``services.save``).

- ``picture:<owner>``: the owner's latest uploaded picture (its id, model and bytes):
  one per user, so what a user holds in Redis stays bounded (a new upload replaces
  it; a moved slider on an older one asks to upload it again);
- ``job:<token>``: one prediction: owner, model, source (``picture:<id>`` or
  ``sample:<index>``), conf, iou, status, then the drawn JPEG, the detections and the
  inference time the worker wrote;
- ``pending:<owner>:<model>``: the token of the prediction in flight, so a user runs
  one prediction per model at a time (freed by the worker, or after PENDING_SECONDS).

The web process writes pictures and jobs; the worker (``training.engine.predictions``)
claims a job and writes its result."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from redis.typing import EncodableT, FieldT

# A job not answered by then no longer blocks the next one (the actor's time limit is shorter).
PENDING_SECONDS = 90


class Status:
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    token: str
    owner_id: int
    model_id: int
    source: str
    conf: float
    iou: float
    status: str
    error: str = ""
    detections: list[dict[str, Any]] = field(default_factory=list)
    inference_ms: float | None = None
    width: int | None = None
    height: int | None = None
    created: float = 0.0  # time.time() when it was asked for

    @property
    def finished(self) -> bool:
        return self.status in (Status.DONE, Status.FAILED)

    @property
    def abandoned(self) -> bool:
        """Still unanswered when its slot was freed: no worker took it, or its worker died."""
        return not self.finished and time.time() - self.created > PENDING_SECONDS


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)


Fields = dict[FieldT, EncodableT]


def _text(value: object) -> str:
    """A field Redis answered (bytes: the client does not decode responses)."""
    assert isinstance(value, bytes)
    return value.decode()


def _key(*parts: object) -> str:
    return ":".join([settings.DRAMATIQ_NAMESPACE, "predict", *map(str, parts)])


def put_picture(owner_id: int, model_id: int, data: bytes) -> str:
    """Keep an uploaded picture for PREDICT_TTL_SECONDS, in place of the owner's previous
    one; returns its source name."""
    picture_id = secrets.token_urlsafe(16)
    key = _key("picture", owner_id)
    pipe = _redis().pipeline()
    pipe.delete(key)
    pipe.hset(key, mapping={"id": picture_id, "model": model_id, "data": data})
    pipe.expire(key, settings.PREDICT_TTL_SECONDS)
    pipe.execute()
    return f"picture:{picture_id}"


def picture_bytes(owner_id: int, model_id: int, source: str) -> bytes | None:
    """The uploaded picture ``source`` names, if it is still the owner's kept one, for this model."""
    kind, _, picture_id = source.partition(":")
    if kind != "picture":
        return None
    kept_id, model, data = _redis().hmget(_key("picture", owner_id), ["id", "model", "data"])
    if kept_id is None or _text(kept_id) != picture_id or int(_text(model)) != model_id:
        return None
    assert isinstance(data, bytes)
    return data


def create_job(owner_id: int, model_id: int, source: str, *, conf: float, iou: float) -> Job | None:
    """A new pending prediction, or None while this owner has one in flight for this model.
    The picture it reads lives as long as the job from now on."""
    client = _redis()
    token = secrets.token_urlsafe(16)
    if not client.set(_key("pending", owner_id, model_id), token, nx=True, ex=PENDING_SECONDS):
        return None
    job = Job(token, owner_id, model_id, source, conf, iou, Status.PENDING, created=time.time())
    key = _key("job", token)
    pipe = client.pipeline()
    fields: Fields = {"owner": owner_id, "model": model_id, "source": source, "conf": conf, "iou": iou}
    fields["created"] = job.created
    pipe.hset(key, mapping={**fields, "status": job.status})
    pipe.expire(key, settings.PREDICT_TTL_SECONDS)
    if source.startswith("picture:"):
        pipe.expire(_key("picture", owner_id), settings.PREDICT_TTL_SECONDS)
    pipe.execute()
    return job


def get_job(token: str) -> Job | None:
    fields = _redis().hgetall(_key("job", token))
    if not fields:
        return None
    text = {_text(name): _text(value) for name, value in fields.items() if name != b"image"}
    return Job(
        token=token,
        owner_id=int(text["owner"]),
        model_id=int(text["model"]),
        source=text["source"],
        conf=float(text["conf"]),
        iou=float(text["iou"]),
        status=text["status"],
        error=text.get("error", ""),
        detections=json.loads(text.get("detections", "[]")),
        inference_ms=float(text["inference_ms"]) if "inference_ms" in text else None,
        width=int(text["width"]) if "width" in text else None,
        height=int(text["height"]) if "height" in text else None,
        created=float(text["created"]),
    )


def result_image(token: str) -> bytes | None:
    data = _redis().hget(_key("job", token), "image")
    assert data is None or isinstance(data, bytes)
    return data


_CLAIM_IF_PENDING = (
    "if redis.call('hget', KEYS[1], 'status') == ARGV[1] then"
    " redis.call('hset', KEYS[1], 'status', ARGV[2]) return 1 end return 0"
)


def claim(token: str) -> Job | None:
    """The job, if this call is the first to claim it (a redelivered message finds it
    taken, and one that expired while queued finds nothing)."""
    if not _redis().eval(_CLAIM_IF_PENDING, 1, _key("job", token), Status.PENDING, Status.RUNNING):
        return None
    return get_job(token)


def finish(
    job: Job, *, jpeg: bytes, detections: list[dict[str, Any]], inference_ms: float, size: tuple[int, int]
) -> None:
    _write_result(
        job,
        {
            "status": Status.DONE,
            "image": jpeg,
            "detections": json.dumps(detections),
            "inference_ms": inference_ms,
            "width": size[0],
            "height": size[1],
        },
    )


def fail(job: Job, message: str) -> None:
    _write_result(job, {"status": Status.FAILED, "error": message[:500]})


def _write_result(job: Job, mapping: Fields) -> None:
    """Write the result only while the job is still kept (never resurrecting an expired
    one without a TTL), then free the owner's slot for this model."""
    client = _redis()
    key = _key("job", job.token)
    ttl = client.ttl(key)
    if ttl > 0:
        pipe = client.pipeline()
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl)
        pipe.execute()
    release_pending(job)


_RELEASE_IF_OURS = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def release_pending(job: Job) -> None:
    _redis().eval(_RELEASE_IF_OURS, 1, _key("pending", job.owner_id, job.model_id), job.token)
