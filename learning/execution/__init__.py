"""Execution: *how* local updates run; the algorithm (``learning.algorithms``) says *what* runs.

- ``executors``: the protocol, ``SequentialExecutor``, ``ProcessExecutor`` and the registry
  (``EXECUTORS``, ``make_executor``).
- ``batched``: ``BatchedExecutor`` (many devices' updates at once, ``torch.func``) with
  ``plan`` (the ``BatchedPlan`` contract an algorithm implements beside itself),
  ``plain_plan`` (``PlainPlan``: whole-model training from given tensors, the shared half of
  the FedAvg, local, pFedHN, pFedHN-PC and FedTP plans) and ``batched_vit`` (the ViT
  forward over a stacked device axis).
- ``ray_executor``: ``RayExecutor`` (Ray actors, locally or on a cluster).
- ``transport``: how tasks and results travel to and from pool workers.

Only ``executors`` is imported here; the batched and Ray machinery load when built.
"""

from learning.execution.executors import (
    EXECUTORS,
    Executor,
    ProcessExecutor,
    SequentialExecutor,
    Task,
    make_executor,
)

__all__ = ["EXECUTORS", "Executor", "ProcessExecutor", "SequentialExecutor", "Task", "make_executor"]
