"""A running step that nobody hears from any more is failed, so that the controller's retry runs it on another agent.

A killed agent leaves its step `in_progress` on the server: ClearML's controller treats such a task as running, and
the server's own watchdog stops it only after two hours. While a step runs, its agent reports every 30 s and the step
reports its log and scalars, and each of these moves the task's `last_update`; when none has for `minutes`, the
step's task is marked failed with the reason. It recorded no failure kind, so the retry callback retries it, and a
training resumes from its last uploaded checkpoint.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone


def is_stale(status: str, last_update: datetime | None, now: datetime, minutes: float) -> bool:
    """A step is stale when it is in progress and its task has not been updated for `minutes`."""
    if status != "in_progress" or last_update is None:
        return False
    if last_update.tzinfo is None:
        last_update = last_update.replace(tzinfo=timezone.utc)
    return (now - last_update).total_seconds() > minutes * 60


class StaleStepWatch(threading.Thread):
    """Watches a PipelineController's running steps from a thread of the controller's process."""

    def __init__(self, controller, minutes: float, poll_seconds: float = 15.0):
        super().__init__(name="stale-step-watch", daemon=True)
        self.controller, self.minutes, self.poll_seconds = controller, minutes, poll_seconds
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.poll_seconds):
            for node in list(self.controller._nodes.values()):  # noqa: SLF001 (the SDK has no public accessor)
                job = getattr(node, "job", None)
                if job is None or node.executed:
                    continue
                try:
                    self.check(node.name, job.task)
                except Exception as error:  # a server hiccup must not end the watch
                    print(f"stale-step watch: could not check {node.name} ({error})")

    def check(self, name: str, task) -> None:
        task.reload()
        if is_stale(str(task.status), task.data.last_update, datetime.now(timezone.utc), self.minutes):
            reason = (f"no report from step {name} for {self.minutes:g} min (its agent stopped?): failed so that it "
                      f"is retried")
            print(reason, flush=True)
            task.mark_failed(status_reason=reason, status_message=reason, force=True)
