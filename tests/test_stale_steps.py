"""The stale-step rule: a running step nobody has heard from for `minutes` is failed (so that it is retried)."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from pipelines.stale_steps import StaleStepWatch, is_stale

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def test_only_a_running_step_silent_for_longer_than_the_limit_is_stale():
    assert is_stale("in_progress", NOW - timedelta(minutes=11), NOW, 10)
    assert not is_stale("in_progress", NOW - timedelta(minutes=9), NOW, 10)
    assert not is_stale("queued", NOW - timedelta(hours=5), NOW, 10)  # waiting for an agent is not dying
    assert not is_stale("completed", NOW - timedelta(hours=5), NOW, 10)
    assert not is_stale("in_progress", None, NOW, 10)
    assert is_stale("in_progress", (NOW - timedelta(minutes=11)).replace(tzinfo=None), NOW, 10)  # server: naive UTC


def test_the_watch_fails_a_stale_task_with_the_reason():
    class Task:
        status, failed = "in_progress", None
        data = SimpleNamespace(last_update=datetime.now(timezone.utc) - timedelta(minutes=3))

        def reload(self):
            pass

        def mark_failed(self, status_reason, status_message, force):
            self.failed = status_reason

    watch = StaleStepWatch(controller=None, minutes=2)
    task = Task()
    watch.check("train_cnn_b", task)
    assert task.failed.startswith("no report from step train_cnn_b for 2 min")
    fresh = Task()
    fresh.data = SimpleNamespace(last_update=datetime.now(timezone.utc))
    watch.check("train_cnn_b", fresh)
    assert fresh.failed is None
