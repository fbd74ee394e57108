"""Where independent units of work run: the Fig 1 cells, the augmentation pairs, chunks of CF generation.

One contract, `Executor.map(fn, items)`: yields `(position of the item, fn(item))` as results arrive, in any
order; an exception raised by `fn` is raised in the caller; outside this process `fn` runs quietly (the caller
reports progress). `LocalExecutor(jobs)` calls `fn` in this process (jobs=1) or in joblib processes;
`RayExecutor(address, num_cpus)` runs Ray tasks, on a local Ray instance that it starts and stops (address None)
or on a running cluster (address "auto" or "HOST:PORT"). `fn` and the items travel pickled; a result depends on
them only, so every executor returns the same results for the same seeds.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from .console import set_verbose
from .errors import ConfigError

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'sensecf[ray]'"
#: Ray's API server probes the cloud metadata service (169.254.169.254, metadata.google.internal) at start even
#: with usage stats off; the processes of a local Ray instance start with this unreachable loopback proxy, so the
#: probe ends at once on this machine (Ray's own gRPC ignores proxy variables); tasks get the caller's values back
_CLOSED_PROXY = "http://127.0.0.1:9"
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")


class Executor:
    """The contract (see the module docstring); a context manager that closes what it started."""

    def map(self, fn: Callable[[Any], Any], items: Iterable) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what this executor started (nothing for the local one)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _indexed(fn: Callable, position: int, item) -> tuple[int, Any]:
    set_verbose(False)  # in a worker process: progress is the caller's to report
    return position, fn(item)


class LocalExecutor(Executor):
    """This process for jobs=1, else up to `jobs` joblib (loky) processes."""

    def __init__(self, jobs: int = 1):
        if int(jobs) < 1:
            raise ConfigError(f"jobs must be at least 1, got {jobs}")
        self.jobs = int(jobs)

    def map(self, fn, items):
        items = list(items)
        if self.jobs == 1 or len(items) <= 1:
            for position, item in enumerate(items):
                yield position, fn(item)
            return
        from joblib import Parallel, delayed

        yield from Parallel(n_jobs=min(self.jobs, len(items)), return_as="generator_unordered")(
            delayed(_indexed)(fn, position, item) for position, item in enumerate(items))


def _call(fn: Callable, item):
    set_verbose(False)  # in a Ray worker: progress is the caller's to report
    return fn(item)


def _import_ray():
    """The ray module, or a ConfigError that names the install command."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs the Ray package: {RAY_INSTALL}") from None
    return ray


@contextmanager
def _local_ray_environment():
    """The environment a local Ray instance starts in: usage stats off and the closed proxy. Yields the caller's
    proxy variables (for the tasks) and restores them in this process afterwards."""
    saved = {k: os.environ.get(k) for k in (*_PROXY_VARS, "RAY_USAGE_STATS_ENABLED")}
    os.environ.update({"RAY_USAGE_STATS_ENABLED": "0", "http_proxy": _CLOSED_PROXY, "HTTP_PROXY": _CLOSED_PROXY,
                       "no_proxy": "", "NO_PROXY": ""})
    try:
        yield {k: saved[k] or "" for k in _PROXY_VARS}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class RayExecutor(Executor):
    """Ray tasks (one CPU each): on a cluster at `address`, or on a local Ray instance of `num_cpus` CPUs (all
    of this machine's by default) started at the first map and stopped by close. A Ray already initialised in
    this process is used as it is and left running."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.ray = _import_ray()
        if address and num_cpus is not None:
            raise ConfigError("num_cpus is set by the cluster when a Ray address is given")
        self.address, self.num_cpus = address or None, num_cpus
        self._started = False
        self._task = None

    def _connect(self):
        ray = self.ray
        if not ray.is_initialized():
            settings = dict(include_dashboard=False, logging_level=logging.WARNING)
            if self.address:
                ray.init(address=self.address, **settings)
            else:
                with _local_ray_environment() as task_env:
                    ray.init(num_cpus=self.num_cpus, runtime_env={"env_vars": task_env}, **settings)
                self._started = True
        if self._task is None:
            self._task = ray.remote(num_cpus=1)(_call)
        return self._task

    def map(self, fn, items):
        items = list(items)
        if not items:
            return
        task = self._connect()
        ray = self.ray
        fn_ref = ray.put(fn)  # shared data travels to the object store once, not with every task
        pending = {task.remote(fn_ref, item): position for position, item in enumerate(items)}
        try:
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                position = pending.pop(ready)
                try:
                    result = ray.get(ready)
                except ray.exceptions.RayTaskError as e:  # the task's own exception, as a local call raises it
                    raise e.cause from e
                yield position, result
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started, self._task = False, None


def make_executor(kind: str = "local", *, jobs: int = 1, address: str | None = None,
                  num_cpus: int | None = None) -> Executor:
    """`LocalExecutor(jobs)` for "local", `RayExecutor(address, num_cpus)` for "ray"; ConfigError otherwise (and
    for "ray" without the ray package, naming its install command)."""
    if kind == "local":
        if address:
            raise ConfigError("a Ray address needs --executor ray")
        return LocalExecutor(jobs)
    if kind == "ray":
        return RayExecutor(address, num_cpus)
    raise ConfigError(f"unknown executor {kind!r}; available: {', '.join(EXECUTORS)}")
