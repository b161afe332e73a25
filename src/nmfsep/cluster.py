"""The same batch on a Dask cluster (``split --scheduler``; the dask extra).

    connect(ADDRESS) --> run(jobs, settings, output, client) --> records, as inputs finish
    per input, on a worker: batch.process(job, settings, output, progress)

The shape of ``batch._run_pool``: the model set's training is made here, once, and the trained
settings go to every worker once (a worker plugin); each input is one task; its start and its
progress come back as events on a topic unique to the run; a worker that dies mid-input gets
that input retried once, then it is an error record; Ctrl-C sets a run-unique Event that the
running tasks watch, so that they stop and remove their temporary files. Local paths go to the
workers absolute, and come back in the records as they were given.
"""

import dataclasses
import os
import queue
import time
import uuid
from typing import Iterator

from distributed.diagnostics.plugin import WorkerPlugin

from . import batch, storage
from .batch import Job, Listener, Output
from .errors import NmfsepError
from .pipeline import Settings

CONNECT_SECONDS = 10  # how long to wait for the scheduler before giving up
STOP_SECONDS = 15  # how long Ctrl-C waits for the running tasks to remove their temporary files
PROGRESS_EVERY = 0.25  # seconds between two progress events of one task
STOP_CHECK_EVERY = 0.5  # seconds between two looks of a running task at the run's stop Event
MAX_ATTEMPTS = 2  # a worker that dies while separating an input: it is tried once more, no more
DIED = "the worker process died twice while separating it (out of memory, or killed)"


class _Stopped(BaseException):
    """Raised in a task by its progress callback once the run is stopped (Ctrl-C): a
    BaseException, so that batch.process lets it through after its clean-up (as for Ctrl-C)."""


def connect(address: str, timeout: float = CONNECT_SECONDS):
    """A distributed.Client of the scheduler at ``address``: an address that distributed takes
    (tcp://host:port, tls://, ws://, ...) or the path of a scheduler file (dask-jobqueue and
    dask-mpi write them). Never starts a cluster. Raises NmfsepError when the address cannot be
    one, or no scheduler answers there within ``timeout`` seconds (a port where something else
    listens, such as the dashboard's, included)."""
    import json
    import threading

    from distributed import Client
    from distributed.comm import registry
    from distributed.comm.addressing import parse_address

    def refuse(reason: str) -> NmfsepError:
        return NmfsepError(f"cannot reach the Dask scheduler at {address} ({reason})")

    target = address
    if address.endswith(".json") or os.path.isfile(address):
        try:
            with open(address, encoding="utf-8") as file:
                target = json.load(file)["address"]
        except FileNotFoundError:
            raise refuse("no such scheduler file") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise refuse(f"not a Dask scheduler file: {exc}") from None
    try:
        scheme, location = parse_address(target)
        if scheme not in registry.backends:
            raise ValueError(f"{scheme}:// is not a Dask protocol (tcp://HOST:PORT, tls://, ws://)")
        if scheme in ("tcp", "tls", "ws", "wss") and not location.rsplit(":", 1)[-1].isdigit():
            raise ValueError(f"no port number in {target!r}")
    except (ValueError, TypeError) as exc:
        raise refuse(f"{exc}; give tcp://HOST:PORT or a scheduler file") from None
    # The Client waits in a daemon thread: on a port where something other than a scheduler
    # listens, its handshake never ends, and a Client left half made stalls the exit for 20 s.
    made: dict = {}

    def make():
        try:
            made["client"] = Client(target, timeout=timeout, set_as_default=False)
        except Exception as exc:  # OSError, TimeoutError
            made["error"] = " ".join(str(exc).split()) or type(exc).__name__

    thread = threading.Thread(target=make, daemon=True)
    thread.start()
    thread.join(timeout + 1)
    if "client" in made:
        return made["client"]
    raise refuse(made.get("error") or f"no Dask scheduler answered within {timeout:g} s; "
                 "is it the scheduler's port (8786 by default), not the dashboard's?")


def describe(client) -> str:
    """'N workers, T threads' of the cluster behind a client."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    count, threads = len(workers), sum(w["nthreads"] for w in workers)
    return f"{count} worker{'s' * (count != 1)}, {threads} thread{'s' * (threads != 1)}"


def run(jobs: list[Job], settings: Settings, output: Output, address, listener: Listener | None = None
        ) -> Iterator[dict]:
    """Process every job as a task on the Dask cluster at ``address`` (a scheduler address or
    file, see ``connect``, or a distributed.Client, left open), yielding each input's record (as
    ``batch.run`` does) in the order the inputs finish.

    The model set's training is made here, once (``batch.train_models``), and sent to every
    worker once. Local paths must be on a disk that the workers share (their records say so
    otherwise); stdin, --stdout and memory:// cannot be split on a cluster (NmfsepError).
    A worker that dies while separating an input: the input is tried once more, then its record
    is an error. Ctrl-C (KeyboardInterrupt) stops the running tasks (their temporary files are
    removed; waiting at most STOP_SECONDS), cancels the others, and is raised again.
    """
    if output.stdout_stem or any(j.input == "-" for j in jobs):
        raise NmfsepError("--scheduler cannot read stdin or write --stdout (the workers run elsewhere)")
    if storage.in_process_only(output.folder) or any(storage.in_process_only(j.input) for j in jobs):
        raise NmfsepError("--scheduler cannot use memory:// (it lives in one process): use s3:// or a shared disk")
    if isinstance(address, str):
        client = connect(address)
        try:
            yield from run(jobs, settings, output, client, listener)
        finally:
            client.close()
        return
    yield from _run_tasks(address, jobs, batch.train_models(jobs, settings, listener), output, listener)


def _run_tasks(client, jobs: list[Job], settings: Settings, output: Output,
               listener: Listener | None) -> Iterator[dict]:
    from concurrent.futures import CancelledError

    from distributed import Event, as_completed
    from distributed.scheduler import KilledWorker

    run_id = f"nmfsep-{uuid.uuid4().hex}"
    events: queue.Queue = queue.Queue()
    client.subscribe_topic(run_id, lambda event: events.put(event[1]))
    stop = Event(run_id, client=client)
    # The settings (with their training) go to every worker once, as a worker plugin: a worker
    # that starts later (a dead one restarted) gets them too, and the tasks have no dependency
    # to hold them to the workers that have it (scattered data would: the scheduler puts tasks
    # where their data is, and loses it with its last worker).
    client.register_plugin(_Settings(settings, _workers_per_host(client)), name=run_id)
    remote_output = output if storage.is_url(output.folder) else dataclasses.replace(
        output, folder=os.path.abspath(output.folder))
    starts = [0] * len(jobs)
    records: dict[int, dict] = {}  # index -> its record, come as an event (before its task's result)
    futures = {}  # future -> index

    def submit(index: int, attempt: int) -> None:
        job = jobs[index]
        remote = job if storage.is_url(job.input) else dataclasses.replace(job, input=os.path.abspath(job.input))
        future = client.submit(_task, index, remote, os.path.exists(job.input), remote_output,
                               run_id, listener is not None, key=f"{run_id}-{index}-{attempt}", pure=False)
        futures[future] = index
        finished.add(future)

    finished = as_completed(loop=client.loop)  # not the default client's loop
    try:
        for index in range(len(jobs)):
            submit(index, 0)
        retried: set[int] = set()
        while not finished.is_empty():
            _drain(events, jobs, listener, starts, records, timeout=0.1)
            for future in finished.next_batch(block=False):
                index = futures.pop(future)
                job = jobs[index]
                # A task's record comes as an event too (sent before its result, on the same
                # streams): it survives the worker that holds the result dying before it is read.
                record, error = records.pop(index, None), None
                if record is None and future.status == "finished":
                    record = future.result()
                elif record is None and client.status != "running":  # its tasks went with it
                    raise NmfsepError(f"lost the Dask scheduler at {client.scheduler.address} with "
                                      f"{len(futures) + 1} input{'s' * bool(futures)} not reported done (rerun "
                                      "with --skip-existing: the inputs whose stems were all written are skipped)")
                elif record is None:
                    error = future.exception() if future.status == "error" else CancelledError()
                future.release()  # done: the scheduler must not compute it again if a worker dies
                if record is not None:
                    yield _local(record, job, output, remote_output)
                    continue
                if isinstance(error, KilledWorker):  # the scheduler's allowed-failures ran out
                    _drain(events, jobs, listener, starts, records)
                    if starts[index] < MAX_ATTEMPTS and index not in retried:
                        retried.add(index)
                        submit(index, 1)
                        continue
                    message = f"{job.input}: {DIED}"
                else:  # e.g. settings that cannot be sent to a worker
                    message = f"{job.input}: internal error: {type(error).__name__}: {error}"
                yield batch.error_record(job, settings, message)
    except BaseException:  # Ctrl-C, or the caller stopped early: stop the running tasks, cleanly
        if client.status == "running":
            _stop(client, stop, futures, starts, events, jobs)
        raise
    finally:
        try:
            client.unsubscribe_topic(run_id)
            client.unregister_worker_plugin(run_id)
        except Exception:  # the scheduler gone: nothing left to remove
            pass


def _drain(events: queue.Queue, jobs: list[Job], listener: Listener | None, starts: list[int],
           records: dict, timeout: float = 0.0) -> None:
    """Hand the tasks' events to the listener (waiting up to ``timeout`` for the first one);
    count the starts, keep the records."""
    while True:
        try:
            kind, index, *rest = events.get(timeout=timeout) if timeout else events.get_nowait()
        except queue.Empty:
            return
        timeout = 0.0
        if kind == "start":
            starts[index] += 1
            if listener:
                listener.started(jobs[index])
        elif kind == "done":
            records[index] = rest[0]
        elif listener:
            listener.progress(jobs[index], *rest)


def _stop(client, stop, futures: dict, starts: list[int], events: queue.Queue, jobs: list[Job]) -> None:
    """Set the run's stop Event, cancel the tasks not started, wait (at most STOP_SECONDS) for
    the started ones to stop (they remove their temporary files), cancel what is left."""
    from distributed import wait

    try:
        stop.set()
        _drain(events, jobs, None, starts, {})
        client.cancel([f for f, index in futures.items() if not starts[index]])
        running = [f for f, index in futures.items() if starts[index]]
        if running:
            wait(running, timeout=STOP_SECONDS)
    except Exception:  # a timeout, or the scheduler gone: nothing more to wait for
        pass
    finally:
        client.cancel(list(futures))


# --- on a worker ------------------------------------------------------------------------------

def _workers_per_host(client) -> dict[str, int]:
    """How many workers each host runs (by the host of their addresses), when the run starts."""
    from urllib.parse import urlsplit

    hosts: dict[str, int] = {}
    for address in client.scheduler_info(n_workers=-1)["workers"]:
        host = urlsplit(address).hostname or address
        hosts[host] = hosts.get(host, 0) + 1
    return hosts


class _Settings(WorkerPlugin):
    """The run's settings, kept by each worker (worker.plugins[run id]) for the run's tasks, and
    how many workers each host runs (to share its cores out among their tasks)."""

    def __init__(self, settings: Settings, workers_per_host: dict[str, int]):
        self.settings, self.workers_per_host = settings, workers_per_host

    def threads(self, worker) -> int:
        """BLAS and solver threads for one task of ``worker``: the cores it may use (dask's
        cpu_count: affinity, and a container's CPU quota) shared out among the tasks that may run
        on its host at once (the host's workers times their threads), at least 1 (as
        batch._run_pool shares them out among -j processes)."""
        from urllib.parse import urlsplit

        from dask.system import cpu_count

        host = urlsplit(worker.address).hostname or worker.address
        tasks = self.workers_per_host.get(host, 1) * max(1, worker.state.nthreads)
        return max(1, cpu_count() // tasks)  # its affinity and cgroup quota (a container's CPU limit)


def _task(index: int, job: Job, seen_by_client: bool, output: Output, run_id: str, report: bool) -> dict | None:
    """One input on a worker: its record, or None where the run was stopped."""
    from distributed import Event, get_client, get_worker
    from threadpoolctl import threadpool_limits

    worker = get_worker()
    settings = worker.plugins[run_id].settings
    key, starts = worker.get_current_task(), f"{run_id}-starts-{index}"

    def deaths(dask_scheduler):  # sent by value: the scheduler needs no nmfsep installed
        """The worker deaths this task was involved in (distributed's TaskState.suspicious),
        counting only those while it ran (not those of a worker where it was only queued): at
        most the times it was started before."""
        task = dask_scheduler.tasks.get(key)
        suspicious = task.suspicious if task is not None else 0
        return min(suspicious, len(dask_scheduler.get_events(starts))) if suspicious else 0

    client = get_client()
    stop = Event(run_id, client=client)
    if stop.is_set():
        return None

    def finish(record: dict) -> dict:
        worker.log_event(run_id, ("done", index, record))
        return record

    if client.run_on_scheduler(deaths) >= MAX_ATTEMPTS:
        return finish(batch.error_record(job, settings, f"{job.input}: {DIED}"))
    worker.log_event(starts, None)
    worker.log_event(run_id, ("start", index))
    if seen_by_client and not storage.is_url(job.input) and not os.path.exists(job.input):
        return finish(batch.error_record(job, settings, f"{job.input}: not found on the Dask worker {worker.address} "
                                       "(put the inputs on a disk that every worker shares, or give s3:// URLs)"))
    last = {"progress": 0.0, "stop": time.monotonic()}

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last["stop"] >= STOP_CHECK_EVERY:
            last["stop"] = now
            if stop.is_set():
                raise _Stopped
        if report and (now - last["progress"] >= PROGRESS_EVERY or done >= total):
            last["progress"] = now
            worker.log_event(run_id, ("progress", index, done, total))

    threads = worker.plugins[run_id].threads(worker)
    try:
        with threadpool_limits(threads):
            record = batch.process(job, settings, output, progress)
    except _Stopped:  # the input's temporary files are removed by now
        return None
    if record["error"] and "no credentials" in record["error"]:  # the client had them, or it would not be here
        record["error"] += f" on the Dask worker {worker.address}: give every worker these variables too"
    return finish(record)


def _local(record: dict, job: Job, output: Output, remote: Output) -> dict:
    """A worker's record with the paths as a local run gives them (relative where given so)."""
    def local(path: str) -> str:
        if not storage.is_url(path) and path.startswith(remote.folder + os.sep):
            return os.path.normpath(os.path.join(output.folder, os.path.relpath(path, remote.folder)))
        return path

    given = os.path.abspath(job.input) if not storage.is_url(job.input) else job.input
    record["input"] = job.input
    batch.move_paths(record, local)
    if record["error"]:
        words = [local(word) for word in record["error"].replace(given, job.input).split(" ")]
        record["error"] = " ".join(words)
    return record
