"""Where the points of `nnc explore` run: in this process (one job), a local
process pool (`--jobs N`), or Ray (`--ray ADDRESS|auto|local`, the optional
extra `pip install 'nnc[ray]'`).

Points are handed out in tasks: the hardware points of one compression
setting together (split in as many parts as it takes to give every job a
task), so that a setting is compiled by as few workers as possible. Every
runner calls explore_worker.evaluate on each point with the same workload and
hands each result to `on_result` as its task finishes, in completion order;
the caller orders the results by point. Workers compute each point on
one BLAS thread, so a point's result is the same whichever runner ran it.
An exception other than an NncError inside a point (a bug, a dead worker)
comes back as a failed point naming it, so that one bad point does not lose
the sweep.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from .errors import OptionError
from .explore_worker import Workload, evaluate, release_contexts

OnResult = Callable[[dict], None]
# the Ray address that starts a private local Ray instead of joining a cluster
RAY_LOCAL = "local"
# what a point needs imported: the pool's workers fork with these loaded
WORKER_MODULES = ("nnc.explore_worker", "nnc.driver", "nnc.verification", "nnc.frontend.model_file",
                  "nnc.backends.azsim.target", "nnc.backends.azsim.simulator", "onnxruntime")


def run_points(workload: Workload, points: list, jobs: int, ray_address: str | None, on_result: OnResult) -> list[dict]:
    """Evaluate every point; the results, one per point, in completion order."""
    tasks = split_tasks(points, jobs)
    if ray_address is not None:
        return _run_ray(workload, tasks, jobs, ray_address, on_result)
    if jobs == 1:
        try:
            return [_reported(result, on_result) for task in tasks for result in _evaluate_task(workload, task)]
        finally:
            release_contexts()
    return _run_pool(workload, tasks, jobs, on_result)


def split_tasks(points: list, jobs: int) -> list[list]:
    """The points grouped by compression setting (in point order), each group
    cut into ⌈jobs / groups⌉ parts of consecutive points when there are fewer
    groups than jobs."""
    groups: dict[tuple, list] = {}
    for point in points:
        groups.setdefault(point.compression, []).append(point)
    parts = -(-jobs // max(len(groups), 1))
    tasks = []
    for group in groups.values():
        size = -(-len(group) // parts)
        tasks += [group[start:start + size] for start in range(0, len(group), size)]
    return tasks


def _run_pool(workload: Workload, tasks: list[list], jobs: int, on_result: OnResult) -> list[dict]:
    """A pool of `jobs` processes, each given the workload once. They fork from a
    server process that imported nnc's compiler once (forkserver, preloaded), so
    a worker starts in milliseconds instead of importing nnc and onnxruntime
    itself, and none inherits this process's threads. Where the server cannot
    start, they are spawned (each imports nnc itself)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_MODULES))
    try:
        multiprocessing.forkserver.ensure_running()
    except OSError:  # its socket lives in TMPDIR: a long TMPDIR passes AF_UNIX's ~100 characters
        context = multiprocessing.get_context("spawn")
    results = []
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_install, initargs=(workload,)) as pool:
        try:
            pending = {pool.submit(_evaluate_installed, task): task for task in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f][0].index):
                    task = pending.pop(future)
                    error = future.exception()
                    found = [_failed(p, error) for p in task] if error else future.result()
                    results += [_reported(result, on_result) for result in found]
        except BaseException:  # Ctrl-C, SIGTERM: stop the workers now, not after their tasks
            _stop(pool)
            raise
    return results


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the pending tasks and end the workers (terminate_workers from Python 3.14)."""
    pool.shutdown(wait=False, cancel_futures=True)
    if hasattr(pool, "terminate_workers"):
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


_INSTALLED: list[Workload] = []


def _install(workload: Workload) -> None:
    _INSTALLED[:] = [workload]


def _evaluate_installed(task: list) -> list[dict]:
    return _evaluate_task(_INSTALLED[0], task)


def _run_ray(workload: Workload, tasks: list[list], jobs: int, address: str, on_result: OnResult) -> list[dict]:
    """One Ray task per task. `address`: a cluster's address, "auto" (the
    cluster this machine belongs to) or RAY_LOCAL (a private Ray of `jobs` CPUs,
    shut down afterwards)."""
    try:
        import ray
    except ImportError:
        raise OptionError(f"ray={address!r} needs Ray; install it with pip install 'nnc[ray]'",
                          cli="--ray needs Ray; install it with pip install 'nnc[ray]'") from None
    started = not ray.is_initialized()
    if started:
        _start_ray(ray, address, jobs)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_evaluate_task_and_release)
        shared = ray.put(workload)
        pending = {remote.remote(shared, task): task for task in tasks}
        results = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(done[0])
            try:
                found = ray.get(done[0])
            except Exception as exc:  # a Ray error: the worker died, say
                found = [_failed(point, exc) for point in task]
            results += [_reported(result, on_result) for result in found]
        return results
    finally:
        if started:
            ray.shutdown()


def _evaluate_task_and_release(workload: Workload, task: list) -> list[dict]:
    """A Ray task: Ray ends its workers without running their finalizers, so the
    worker's copy of the files goes as soon as the task is done."""
    try:
        return _evaluate_task(workload, task)
    finally:
        release_contexts()


def _start_ray(ray, address: str, jobs: int) -> None:
    """Join the cluster at `address`, or start a private local Ray; OptionError if neither works."""
    local = address == RAY_LOCAL
    try:
        ray.init(address=None if local else address, num_cpus=jobs if local else None,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        said = f"cannot {'start' if local else 'join'} Ray ({first})"
        raise OptionError(f"ray={address!r}: {said}", cli=f"--ray {address}: {said}") from None


def _evaluate_task(workload: Workload, task: list) -> list[dict]:
    return [_guarded(workload, point) for point in task]


def _guarded(workload: Workload, point) -> dict:
    """evaluate(), a bug in it reported as a failed point."""
    try:
        return evaluate(workload, point)
    except Exception as exc:  # noqa: BLE001 - reported on the point, see the module docstring
        return _failed(point, exc)


def _failed(point, error: BaseException) -> dict:
    message = " ".join(str(error).split())[:300]
    return {"index": point.index, "status": "failed",
            "reason": f"internal error: {type(error).__name__}: {message} (a bug in nnc)"}


def _reported(result: dict, on_result: OnResult) -> dict:
    on_result(result)
    return result
