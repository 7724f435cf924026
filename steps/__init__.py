"""Pipeline steps: one module per step, each a thin ClearML adapter around the core library (`brain_tumor`).

Every step is a plain function of small JSON-able arguments that returns a small JSON-able dict. It reports to the
ClearML task it runs in (`Task.current_task()`), which the local runner or ClearML's PipelineController opens.
"""
