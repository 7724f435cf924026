"""The task `brain-tumor doctor` enqueues on each queue: what an agent there really offers a pipeline step.

ClearML turns `probe` into a standalone script the way it turns pipeline steps into scripts (and copies this
module's top-level imports into it), so this module imports nothing at the top and `probe` everything it needs.
"""


def probe(sample_url, sample_sha256):
    """Report, as JSON: Python, the project's package, TensorFlow and the GPUs it sees, whether a file can be
    downloaded from the files server (`sample_url`, checked against its SHA-256) and an artifact uploaded back.
    Every check is caught and reported: the probe itself always completes."""
    import hashlib
    import json
    import platform
    import tempfile
    from pathlib import Path

    report = {"python": platform.python_version(), "host": platform.node()}

    def check(name, action):
        try:
            report[name] = {"ok": True, "value": action()}
        except BaseException as error:  # a probe reports, it never fails
            report[name] = {"ok": False, "value": f"{type(error).__name__}: {error}"[:300]}

    def package():
        import brain_tumor

        return brain_tumor.__version__

    def gpus():
        import tensorflow as tf

        return {"tensorflow": tf.__version__, "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}

    def download():
        from clearml import StorageManager

        local = sample_url if Path(sample_url).is_file() else StorageManager.get_local_copy(sample_url,
                                                                                           extract_archive=False)
        if local is None:
            raise OSError(f"could not download {sample_url}")
        digest = hashlib.sha256(Path(local).read_bytes()).hexdigest()
        if digest != sample_sha256:
            raise ValueError(f"downloaded file differs (sha256 {digest[:12]}…)")
        return sample_url

    def upload():
        from clearml import Task

        task = Task.current_task()
        if task is None:
            raise RuntimeError("no ClearML task")
        path = Path(tempfile.mkdtemp()) / "probe.json"
        path.write_text(json.dumps({"python": report["python"]}))
        if not task.upload_artifact("probe", artifact_object=path, wait_on_upload=True):
            raise OSError("the upload was refused")
        return task.artifacts["probe"].url

    check("package", package)
    check("tensorflow", gpus)
    check("download", download)
    check("upload", upload)
    return json.dumps(report)
