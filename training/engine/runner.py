"""Run one training session on this worker: real ``YOLO(...).train(...)``.

The trainer's callbacks do the platform's work at the epoch boundaries:

- ``on_train_epoch_start``: stop/ownership check, then hold the epoch's expected
  cost (Epochs mode); a refused hold pauses the session before the epoch starts
  (balance, monthly spending cap), or stops it (the session's own spending cap).
- ``on_train_batch_end`` and ``on_val_batch_end``: stop/ownership/balance check,
  from flags the heartbeat thread sets, so a batch costs no query. Raising here
  ends ``train()`` at once and leaves the previous epoch's ``last.pt`` resumable
  (ultralytics saved it before this epoch began). The heartbeat also grows the
  running epoch's hold, a step ahead of its cost; when the balance cannot cover
  the next step (or a spending cap refuses it) it raises the flag, and the
  session pauses (stops, for the session's cap) with the unfinished
  epoch unbilled.
- ``on_model_save``: the epoch's billed wall time ends here (train + validation +
  save); its cost must be held (the hold is grown now if the heartbeat lagged, or
  the session pauses), then ``last.pt`` is copied atomically (ultralytics rewrites it
  in place).
- ``on_fit_epoch_end``: hand the epoch to the ``EpochCommitter`` thread, which
  uploads the checkpoint and then, in one transaction, records the epoch, points
  the model at the checkpoint and captures the charge. It fires a second time from
  ``final_eval`` for an epoch that never started: ignored.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import close_old_connections, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from billing import services as billing
from billing.money import format_usd
from training import sessions, task_metrics
from training.catalogue import shipped_architectures
from training.datasets import local_copy
from training.models import EpochRecord, TrainingSession, YoloModel
from training.weights import weights_path
from training.yolo import trainer as trainer_setup

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 300
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # ultralytics colours its log lines


class SessionInterrupted(Exception):
    """Raised from a callback to end ``train()`` between batches."""


class StopRequested(SessionInterrupted):
    pass


class PauseForBalance(SessionInterrupted):
    def __init__(self, detail: str = "Paused: the balance does not cover the next epoch. Top up, then Resume.") -> None:
        super().__init__(detail)
        self.detail = detail


def balance_ran_out(epoch: int) -> PauseForBalance:
    return PauseForBalance(
        f"Paused during epoch {epoch}: the balance ran out. The unfinished epoch is not charged; "
        f"top up, then Resume from epoch {epoch}."
    )


class OwnershipLost(SessionInterrupted):
    pass


class SpendingCapInterrupt(SessionInterrupted):
    """A hold was refused for a spending cap the user set; ``detail`` says which."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class StopForSessionCap(SpendingCapInterrupt):
    """The session's own cap: it stops (a top-up would not help; Resume with a new cap)."""


class PauseForMonthlyCap(SpendingCapInterrupt):
    """The account's monthly cap: it pauses, and a top-up does not resume it."""


def cap_reached(epoch: int, reached: billing.SpendingCapReached, *, during: bool) -> SpendingCapInterrupt:
    """The interruption for a hold refused for a cap, before ``epoch`` started or while it ran
    (then the unfinished epoch is not charged, as when the balance runs out)."""
    when = f"during epoch {epoch}" if during else f"before epoch {epoch}"
    unbilled = " The unfinished epoch is not charged." if during else ""
    cap, spent = format_usd(reached.cap_micros), format_usd(reached.spent_micros)
    if isinstance(reached, billing.SessionCapReached):
        return StopForSessionCap(
            f"Stopped {when}: it would pass this session's spending cap of {cap} ({spent} spent).{unbilled}"
        )
    return PauseForMonthlyCap(
        f"Paused {when}: this month's spending cap of {cap} is reached.{unbilled} "
        "Raise it on the Billing page, then Resume."
    )


class LogTail(logging.Handler):
    """Keeps the last lines the trainer logged, for the model page's console."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.version = 0
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        for line in ANSI_ESCAPE.sub("", self.format(record)).splitlines():
            self.lines.append(line.rstrip())
        self.version += 1

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.version += 1

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class RunningEpoch:
    """The epoch in progress (Epochs mode): when it started and how much is held for it."""

    epoch: int
    started: float  # time.monotonic()
    held_micros: int

    def elapsed_ms(self, now: float | None = None) -> int:
        return max(1, round(((now if now is not None else time.monotonic()) - self.started) * 1000))


@dataclass
class RunState:
    session_id: int
    worker_id: str
    log: LogTail
    price_per_hour_micros: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    out_of_balance: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None  # set by the epoch committer
    # (epoch, interruption): set by the heartbeat when growing that epoch's hold would pass a cap
    cap_reached: tuple[int, SpendingCapInterrupt] | None = None
    committer: EpochCommitter | None = None
    running: RunningEpoch | None = None  # set by the training thread, its hold grown by the heartbeat

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.lost.is_set():
            raise OwnershipLost
        if self.stop.is_set():
            raise StopRequested
        if self.cap_reached is not None:
            epoch, interruption = self.cap_reached
            if self.running is not None and self.running.epoch == epoch:
                raise interruption
            # That epoch ended within its hold (and is charged): the next epoch's hold decides.
            self.cap_reached = None
        if self.out_of_balance.is_set():
            running = self.running
            raise balance_ran_out(running.epoch) if running else PauseForBalance()

    def hold(self, epoch: int, at_least_micros: int | None = None) -> int | None:
        """``billing.hold_epoch`` for this worker; a session it no longer runs is lost."""
        try:
            return billing.hold_epoch(self.session_id, epoch, worker_id=self.worker_id, at_least_micros=at_least_micros)
        except billing.SessionNotActive as error:
            raise OwnershipLost from error

    def record_completed_epochs(self) -> None:
        """Before a session ends: every epoch that completed is recorded (and billed)."""
        if self.committer is not None:
            self.committer.drain()


def hold_step_ms() -> int:
    return int(settings.BILLING_HOLD_STEP_SECONDS) * 1000


def hold_to_grow_to(running: RunningEpoch, price_per_hour_micros: int, now: float | None = None) -> int | None:
    """The hold a running epoch should grow to now, or None while it still covers the
    epoch's cost so far plus one step. It grows to a whole number of steps past the
    elapsed time, so about once a step, not on every heartbeat."""
    step_ms = hold_step_ms()
    elapsed_ms = running.elapsed_ms(now)
    if billing.epoch_cost_micros(elapsed_ms + step_ms, price_per_hour_micros) <= running.held_micros:
        return None
    return billing.epoch_cost_micros((elapsed_ms // step_ms + 2) * step_ms, price_per_hour_micros)


class Heartbeat(threading.Thread):
    """Refreshes the session's heartbeat and log tail; learns of Stop and of lost ownership."""

    def __init__(self, state: RunState) -> None:
        super().__init__(name=f"heartbeat-{state.session_id}", daemon=True)
        self.state = state
        self.done = threading.Event()
        self.sent_version = -1

    def run(self) -> None:
        try:
            while not self.done.wait(settings.TRAINING_HEARTBEAT_INTERVAL_SECONDS):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        version = self.state.log.version
        tail = self.state.log.text() if version != self.sent_version else None
        try:
            still_owned, stop = sessions.heartbeat(self.state.session_id, self.state.worker_id, tail)
        except Exception:
            logger.exception("heartbeat failed; retrying")
            close_old_connections()
            return
        self.sent_version = version
        if not still_owned:
            self.state.lost.set()
        if stop:
            self.state.stop.set()
        if still_owned and not stop:
            self.grow_running_hold()

    def grow_running_hold(self) -> None:
        """Keep the running epoch's hold a step ahead of its cost; flag the training
        thread to pause when the balance cannot cover the next step."""
        running = self.state.running
        if running is None:
            return
        wanted = hold_to_grow_to(running, self.state.price_per_hour_micros)
        if wanted is None:
            return
        try:
            held = self.state.hold(running.epoch, wanted)
        except OwnershipLost:
            self.state.lost.set()
            return
        except billing.SpendingCapReached as reached:
            if self.state.running is running:
                self.state.cap_reached = (running.epoch, cap_reached(running.epoch, reached, during=True))
            return
        except Exception:
            logger.exception("growing the hold of epoch %s failed; retrying", running.epoch)
            close_old_connections()
            return
        if held is None:
            if self.state.running is running:  # not an epoch that has just ended, fully held
                self.state.out_of_balance.set()
        elif self.state.running is running:
            self.state.running = RunningEpoch(running.epoch, running.started, held)


@dataclass(frozen=True)
class CompletedEpoch:
    epoch: int
    started_at: datetime
    duration_ms: int
    metrics: dict[str, float]
    checkpoint: Path | None  # this epoch's last.pt (with optimizer), moved out of the run dir
    improved: bool  # that checkpoint is also the best so far


class EpochCommitter(threading.Thread):
    """Records completed epochs in order, off the training thread.

    For each epoch: upload its checkpoint, then one transaction records the epoch,
    points the model at the checkpoint and captures the charge. A crash between
    the upload and the commit leaves the model on the previous checkpoint, so the
    epoch is simply trained again and never billed twice. Running here, a large
    checkpoint upload does not hold up the next epoch."""

    def __init__(self, state: RunState, model: YoloModel, bills_per_epoch: bool, target_epochs: int) -> None:
        super().__init__(name=f"epoch-committer-{state.session_id}", daemon=True)
        self.state = state
        self.model = model
        self.bills_per_epoch = bills_per_epoch
        self.target_epochs = target_epochs
        self.task = model.dataset.task
        self.pending: queue.Queue[CompletedEpoch | None] = queue.Queue()
        self.error: BaseException | None = None

    def submit(self, completed: CompletedEpoch) -> None:
        self.pending.put(completed)

    def drain(self) -> None:
        """Wait until every submitted epoch is recorded; re-raise a failure."""
        self.pending.join()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.pending.put(None)
        self.join(timeout=600)

    def run(self) -> None:
        try:
            while (completed := self.pending.get()) is not None:
                try:
                    if self.error is None:
                        self.commit(completed)
                except BaseException as error:
                    logger.exception("recording epoch %s failed", completed.epoch)
                    self.error = error
                    self.state.failure = error
                finally:
                    self.pending.task_done()
            self.pending.task_done()
        finally:
            connection.close()

    def commit(self, done: CompletedEpoch) -> None:
        prefix = f"{self.model.storage_prefix}/checkpoints"
        key = _upload(done.checkpoint, f"{prefix}/epoch-{done.epoch:04d}.pt") if done.checkpoint else ""
        with transaction.atomic():
            model = YoloModel.objects.select_for_update().get(pk=self.model.pk)
            if sessions.owned(self.state.session_id, self.state.worker_id) is None:
                raise OwnershipLost
            EpochRecord.objects.create(
                session_id=self.state.session_id,
                model=model,
                epoch=done.epoch,
                started_at=done.started_at,
                finished_at=timezone.now(),
                duration_ms=done.duration_ms,
                metrics=done.metrics,
            )
            previous = {model.last_checkpoint.name, model.best_weights.name}
            if key:
                model.last_checkpoint.name = key
                if done.improved:
                    model.best_weights.name = key
            model.epochs_completed = done.epoch
            figures = task_metrics.series_figures(self.task, done.metrics)
            model.epoch_series = [*model.epoch_series, [done.epoch, done.duration_ms, figures]]
            model.save(
                update_fields=["last_checkpoint", "best_weights", "epochs_completed", "epoch_series", "updated_at"]
            )
            if self.bills_per_epoch:
                try:
                    billing.capture_epoch(
                        self.state.session_id, done.epoch, done.duration_ms, worker_id=self.state.worker_id
                    )
                except billing.SessionNotActive as error:
                    raise OwnershipLost from error
            obsolete = _unreferenced(previous, model)
            transaction.on_commit(lambda: _delete_quietly(obsolete))
        self.model = model
        self.state.log.add(_epoch_line(done.epoch, self.target_epochs, done.duration_ms, done.metrics, self.task))


class EpochCallbacks:
    """Ultralytics callbacks bound to one session."""

    def __init__(self, state: RunState, session: TrainingSession, snapshot_dir: Path) -> None:
        self.state = state
        self.bills_per_epoch = session.mode == TrainingSession.Mode.EPOCHS
        self.snapshot_dir = snapshot_dir
        self.started: dict[int, tuple[float, datetime]] = {}
        self.ended: dict[int, float] = {}
        self.snapshots: dict[int, tuple[Path, bool]] = {}
        self.submitted: set[int] = set()
        self.committer = EpochCommitter(state, session.model, self.bills_per_epoch, session.target_epochs)
        state.committer = self.committer
        self.committer.start()

    def on_train_start(self, trainer: Any) -> None:
        trainer_setup.use_all_cores(trainer)
        if trainer.args.time:
            self.state.log.add(f"[hubsite] Timed session: trains for at most {trainer.args.time * 3600:.0f} s more.")
        self.state.check()

    def on_train_epoch_start(self, trainer: Any) -> None:
        epoch = trainer.epoch + 1
        self.state.check()
        started = time.monotonic()
        if self.bills_per_epoch:
            self.state.running = RunningEpoch(epoch, started, self.open_hold(epoch))
        self.started[epoch] = (started, timezone.now())

    def open_hold(self, epoch: int) -> int:
        """Hold the epoch's expected cost before it starts, or interrupt: a pause when
        the balance or the monthly cap refuses it, a stop for the session's cap. A
        refusal is asked again once after the previous epoch is settled (its hold may
        still be open, above its actual charge)."""
        for last_try in (False, True):
            try:
                held = self.state.hold(epoch)
            except billing.SpendingCapReached as reached:
                if last_try:
                    raise cap_reached(epoch, reached, during=False) from reached
            else:
                if held is not None:
                    return held
                if last_try:
                    raise PauseForBalance
            self.committer.drain()
        raise AssertionError("unreachable")

    def on_train_batch_end(self, trainer: Any) -> None:
        self.state.check()

    def on_val_batch_end(self, validator: Any) -> None:
        if self.state.running is not None:  # an epoch's validation, not the final one after training
            self.state.check()

    def on_model_save(self, trainer: Any) -> None:
        epoch = trainer.epoch + 1
        ended = time.monotonic()
        self.ended[epoch] = ended
        running, self.state.running = self.state.running, None
        if running is not None:
            self.hold_whole_cost(running, ended)
        # ultralytics rewrites last.pt in place every epoch (and reads it back to recover
        # from NaN losses): upload a copy. When the epoch improved, best.pt holds the
        # same bytes, so one copy serves both.
        snapshot = self.snapshot_dir / f"epoch-{epoch}.pt"
        partial = snapshot.with_suffix(".partial")
        shutil.copyfile(trainer.last, partial)
        partial.replace(snapshot)
        self.snapshots[epoch] = (snapshot, trainer.best_fitness == trainer.fitness)

    def hold_whole_cost(self, running: RunningEpoch, ended: float) -> None:
        """The epoch is billed only if its whole cost is held: grow the hold to it (the
        heartbeat keeps it a step ahead, so this rarely queries), or pause and leave
        the epoch unbilled when the balance cannot cover it."""
        cost = billing.epoch_cost_micros(running.elapsed_ms(ended), self.state.price_per_hour_micros)
        if cost <= running.held_micros:
            return
        try:
            held = self.state.hold(running.epoch, cost)
        except billing.SpendingCapReached as reached:
            raise cap_reached(running.epoch, reached, during=True) from reached
        if held is None:
            raise balance_ran_out(running.epoch)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        epoch = trainer.epoch + 1
        if epoch not in self.started or epoch in self.submitted:
            return  # final_eval's extra call, or a repeat: never recorded or billed twice
        started_monotonic, started_at = self.started[epoch]
        ended_monotonic = self.ended.get(epoch, time.monotonic())
        checkpoint, improved = self.snapshots.pop(epoch, (None, False))
        self.committer.submit(
            CompletedEpoch(
                epoch=epoch,
                started_at=started_at,
                duration_ms=max(1, round((ended_monotonic - started_monotonic) * 1000)),
                metrics=trainer_setup.epoch_metrics(trainer),
                checkpoint=checkpoint,
                improved=improved,
            )
        )
        self.submitted.add(epoch)


def _unreferenced(previous: set[str | None], model: YoloModel) -> list[str]:
    """Stored files the model pointed at before and no longer does."""
    current = {model.last_checkpoint.name, model.best_weights.name}
    return [name for name in previous - current if name]


def _epoch_line(epoch: int, target: int, duration_ms: int, metrics: dict[str, float], task: str) -> str:
    """One console line per recorded epoch, quoting the task's own measures."""
    loss = task_metrics.main_loss(task)
    quoted = [f"{metric.label} {metrics.get(metric.key, 0):.3f}" for metric in task_metrics.headline(task)]
    quoted.append(f"{loss.label} {metrics.get(loss.key, 0):.3f}")
    seconds = duration_ms / 1000
    return f"[hubsite] epoch {epoch}/{target} completed in {seconds:.1f} s: {', '.join(quoted)}. Checkpoint saved."


class _LocalFile(File):  # type: ignore[type-arg]
    """A file of ours on local disk: local-file storage moves it into place instead
    of copying its bytes (Django's fast path for uploads already on disk)."""

    def temporary_file_path(self) -> str:
        return str(self.name)


def _upload(path: Path, name: str) -> str:
    """Store ``path`` under ``name`` and remove the local file."""
    with path.open("rb") as handle:
        stored = default_storage.save(name, _LocalFile(handle, name=str(path)))
    path.unlink(missing_ok=True)
    return stored


def _delete_quietly(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            default_storage.delete(name)


def download(name: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".partial")
    with default_storage.open(name, "rb") as source, temporary.open("wb") as sink:
        shutil.copyfileobj(source, sink, length=1024 * 1024)
    temporary.replace(target)
    return target


# -- one session, end to end --------------------------------------------------------


def run_session(session_id: int, worker_id: str) -> None:
    """Claim the session and train it until it completes, stops, pauses or fails."""
    if not sessions.claim(session_id, worker_id):
        logger.info("session %s is not queued any more; dropping a stale message", session_id)
        return
    log = LogTail()
    state = RunState(session_id=session_id, worker_id=worker_id, log=log)
    heartbeat = Heartbeat(state)
    ultralytics_logger = logging.getLogger("ultralytics")
    ultralytics_logger.addHandler(log)
    heartbeat.start()
    work_dir = Path(settings.TRAINING_WORK_DIR) / f"session-{session_id}-{worker_id}"
    try:
        try:
            _train(state, work_dir)
        except SessionInterrupted:
            state.record_completed_epochs()
            raise
    except StopRequested:
        sessions.finish(session_id, worker_id, TrainingSession.Status.STOPPED, detail="Stopped", log_tail=log.text())
    except SpendingCapInterrupt as reached:
        log.add(f"[hubsite] {reached.detail}")
        status = TrainingSession.Status.STOPPED
        if isinstance(reached, PauseForMonthlyCap):
            status = TrainingSession.Status.PAUSED  # a top-up does not help: never resumed by one
        sessions.finish(
            session_id, worker_id, status, detail=reached.detail[:200], log_tail=log.text(), resume_after_top_up=False
        )
    except PauseForBalance as pause:
        log.add(f"[hubsite] {pause.detail}")
        sessions.finish(
            session_id, worker_id, TrainingSession.Status.PAUSED, detail=pause.detail[:200], log_tail=log.text()
        )
    except OwnershipLost:
        logger.warning("session %s now belongs to another worker; this one stops", session_id)
    except Exception as error:
        logger.exception("session %s failed", session_id)
        with contextlib.suppress(Exception):
            state.record_completed_epochs()  # keep (and bill) the epochs that did complete
        log.add(f"[hubsite] training failed: {error!r}")
        sessions.finish(
            session_id,
            worker_id,
            TrainingSession.Status.FAILED,
            detail="Failed",
            reason=failure_reason(error),
            log_tail=log.text(),
        )
    finally:
        if state.committer is not None:
            state.committer.close()
        heartbeat.done.set()
        heartbeat.join(timeout=10)
        ultralytics_logger.removeHandler(log)
        shutil.rmtree(work_dir, ignore_errors=True)


def _train(state: RunState, work_dir: Path) -> None:
    session = TrainingSession.objects.select_related("model__dataset", "instance_type").get(pk=state.session_id)
    state.price_per_hour_micros = session.price_per_hour_micros
    time_left = time_budget_left_seconds(session)
    if time_left == 0:
        state.log.add("[hubsite] The session's time budget is used up.")
        complete(state, best=None)
        return
    with local_copy(session.model.dataset, Path(settings.DATASET_CACHE_DIR)) as data_yaml:
        best = _fit(state, session, data_yaml, work_dir, time_left)
    complete(state, best=best)


def _fit(state: RunState, session: TrainingSession, data_yaml: Path, work_dir: Path, time_left: int | None) -> Path:
    """Build the model (fresh or from the last checkpoint) and train it; returns the
    path of its best weights."""
    model = session.model
    sessions.set_detail(state.session_id, state.worker_id, "Building the model")
    snapshot_dir = work_dir / "snapshots"
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    overrides = trainer_setup.platform_arguments(data_yaml, work_dir / "run", time_left)
    if model.last_checkpoint and model.epochs_completed > 0:
        target = session.target_epochs
        if time_left is not None:  # a Timed run trains past its epochs until its time is up
            target = max(target, model.epochs_completed + 1)
        weights: Path | str = prepare_resume_checkpoint(model, target, work_dir / "resume" / "last.pt")
        overrides = {**overrides, "resume": str(weights)}
    else:
        weights = initial_weights(model, work_dir / "start" / "weights.pt")
        overrides = {**training_arguments(model, session), **overrides}
    yolo = trainer_setup.build(weights, EpochCallbacks(state, session, snapshot_dir))
    state.check()
    if not sessions.mark_training(state.session_id, state.worker_id):
        state.stop.set()
        state.check()
    return trainer_setup.train(yolo, overrides)


def time_budget_left_seconds(session: TrainingSession) -> int | None:
    """A Timed session's budget less the training time its recorded epochs used, so a
    requeued session trains only for what remains (None: not a Timed session). The
    refund at its end counts the same epochs (``sessions.settle_session``)."""
    if session.mode != TrainingSession.Mode.TIMED or not session.time_budget_seconds:
        return None
    used_ms = session.epochs.aggregate(total=Sum("duration_ms"))["total"] or 0
    return max(0, session.time_budget_seconds - used_ms // 1000)


def complete(state: RunState, best: Path | None) -> None:
    """Training ended on its own (target reached, early stop, or time up): publish the final weights."""
    state.record_completed_epochs()
    with transaction.atomic():
        session = TrainingSession.objects.get(pk=state.session_id)
        model = YoloModel.objects.select_for_update().get(pk=session.model_id)
        if model.epochs_completed > 0:
            if best is not None and best.exists():  # final_eval stripped the optimizer: the smaller file to download
                previous = {model.last_checkpoint.name, model.best_weights.name}
                model.best_weights.name = _upload_copy(best, f"{model.storage_prefix}/best.pt")
                obsolete = _unreferenced(previous, model)
                transaction.on_commit(lambda: _delete_quietly(obsolete))
            model.trained_at = timezone.now()
            model.save(update_fields=["best_weights", "trained_at", "updated_at"])
        sessions.finish(
            state.session_id,
            state.worker_id,
            TrainingSession.Status.COMPLETED,
            detail="Completed",
            log_tail=state.log.text(),
        )


def _upload_copy(path: Path, name: str) -> str:
    with path.open("rb") as handle:
        return default_storage.save(name, File(handle))


def initial_weights(model: YoloModel, local_copy_path: Path) -> Path | str:
    """What a fresh run starts from, in order: the model's own starting weights (its
    copy of another model's weights or of a checked upload, fetched to
    ``local_copy_path``), the installed pretrained weights when the model asked for
    them, else the architecture's YAML (from scratch). Only names in the catalogue
    (the model form checks them too) become a file name; nothing is downloaded."""
    if model.architecture not in {architecture.name for architecture in shipped_architectures()}:
        raise ValueError(f"{model.architecture!r} is not an architecture this site offers")
    if model.start_weights:
        return download(model.start_weights.name or "", local_copy_path)
    if model.pretrained:
        path = weights_path(model.architecture)
        if not path.is_file():
            raise ValueError(
                f"the pretrained weights for {model.architecture} are not installed on this worker "
                f"(expected {path.name} in its weights folder; the operator runs manage.py install_weights)"
            )
        return path
    return f"{model.architecture}.yaml"


def training_arguments(model: YoloModel, session: TrainingSession) -> dict[str, Any]:
    """The user's validated arguments for a fresh run (resume takes them from the checkpoint)."""
    arguments = dict(model.train_args)
    arguments["epochs"] = session.target_epochs
    return arguments


def prepare_resume_checkpoint(model: YoloModel, target_epochs: int, target: Path) -> Path:
    """Fetch the model's last checkpoint and set its target epochs (resume ignores ``epochs=``)."""
    return trainer_setup.set_resume_target(download(model.last_checkpoint.name or "", target), target_epochs)


def failure_reason(error: BaseException) -> str:
    """The failure in words a user can act on."""
    text = str(error) or type(error).__name__
    lowered = text.lower()
    if "out of memory" in lowered:
        return (
            "The instance ran out of memory. Lower the batch size or the image size, or choose an instance "
            f"with more memory. ({text[:300]})"
        )
    if isinstance(error, (SyntaxError, TypeError, ValueError, KeyError, AssertionError)):
        return f"Training could not run with these settings: {text[:500]}"
    return f"Training stopped with an error: {type(error).__name__}: {text[:500]}"
