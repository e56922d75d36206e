"""Training sessions: the state machine, Start and Resume, Stop, what a worker calls,
settling a session's money, and the reaper.

Every status change is one conditional UPDATE through ``transitions.transition``,
checked against its table of allowed moves.
"""

from training.sessions.reaper import reap_stale_sessions, stale_before
from training.sessions.settling import settle_session
from training.sessions.starting import (
    RESUMABLE,
    TRAIN_SESSION_ACTOR,
    StartRefused,
    StartRequest,
    check_plan,
    check_plan_of,
    check_startable,
    concurrency_refusal,
    enqueue_training,
    resume_paused_after_top_up,
    resume_session,
    start_session,
)
from training.sessions.stopping import request_stop
from training.sessions.transitions import ACTIVE, ALLOWED_SOURCES, WORKER_OWNED, IllegalTransition, Status, transition
from training.sessions.worker import claim, finish, heartbeat, mark_training, owned, set_detail

__all__ = [
    "ACTIVE",
    "ALLOWED_SOURCES",
    "RESUMABLE",
    "TRAIN_SESSION_ACTOR",
    "WORKER_OWNED",
    "IllegalTransition",
    "StartRefused",
    "StartRequest",
    "Status",
    "check_plan",
    "check_plan_of",
    "check_startable",
    "claim",
    "concurrency_refusal",
    "enqueue_training",
    "finish",
    "heartbeat",
    "mark_training",
    "owned",
    "reap_stale_sessions",
    "request_stop",
    "resume_paused_after_top_up",
    "resume_session",
    "set_detail",
    "settle_session",
    "stale_before",
    "start_session",
    "transition",
]
