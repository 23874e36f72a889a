"""Launching runs: the one way a run starts, whoever starts it (the sweep, the memory check, `bench.run`
for several devices).

Each run is a fresh process doing what `python -m ENTRY --config-file <results.dir>/configs/<run_id>.json`
does (ENTRY: `launcher.entry` in conf/launcher/, bench.run: launching imports no run module itself), so no run
inherits memory, caches or thread state from another. The child receives the config the parent validated and
never composes its own. A CPU run on one rank is forked from a run server: a process that has imported the
entry module and run nothing else, so the run starts in the state of a new interpreter that has just done its
imports, without paying for them again. Runs on several ranks start through torchrun, and
runs that may touch CUDA start a new interpreter: CUDA does not survive a fork.
Children die with their parent (Linux parent-death signal), and a results directory is locked while
a sweep or run writes to it, so a killed and restarted sweep can never run a configuration twice at once.

Launchers are registered by name (`register_launcher`, like strategies): `local` runs one child at a
time, `parallel` runs `launcher.jobs` at a time, `slurm` submits each child command as a Slurm job
through submitit; a new one is one decorated function plus `conf/launcher/<name>.yaml`. After a child exits its row is read
back; a child killed before writing one still leaves a row (`oom` for SIGKILL, else `failed`).
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch

from bench import PROJECT_ROOT
from bench.config import RunConfig
from bench.errors import BenchError
from bench.measure.memory import resident_file_pages, touch_pages
from bench.results.store import read_run, write_run
from bench.stages import describe

CONFIGS_DIR = "configs"
LOCK_FILE = ".lock"
PARENT_PID_ENV = "BENCH_PARENT_PID"  # set for launched children: they die with this process
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
ANSWER = "run-server: "  # the prefix of a run server's answers on its stdout
LOST_WITH_SERVER = -1000  # the exit code of a forked run whose server died: no signal number, no exit status

_live: set[subprocess.Popen] = set()  # children running now, for forwarding an interrupt
_live_lock = threading.Lock()
_held_lock: list = []  # the results directory lock this process holds; children inherit it


# ---------------------------------------------------------------- one child


def child_command(config_file: Path, devices: int, entry: str) -> list[str]:
    """`python -m ENTRY --config-file F` (ENTRY: launcher.entry, bench.run), or torchrun starting it on `devices` ranks."""
    module = ["-m", entry, "--config-file", str(config_file)]
    if devices > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}", *module]
    return [sys.executable, *module]


def write_config(cfg: RunConfig) -> Path:
    """The validated config, as the child will read it back."""
    path = Path(cfg.results.dir) / CONFIGS_DIR / f"{cfg.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(cfg.to_dict(), indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_config(path: Path) -> RunConfig:
    try:
        return RunConfig.from_dict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"cannot read run config {path} ({exc})") from None


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to signal this process when its parent dies; exit now if the parent is already gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no parent-death signal to ask for
        return
    expected = os.environ.get(PARENT_PID_ENV)
    direct_child = "LOCAL_RANK" not in os.environ  # torchrun's ranks are children of torchrun, not of the launcher
    if expected and direct_child and os.getppid() != int(expected):  # the parent died before prctl took effect
        os.kill(os.getpid(), signum)


def run_child(cfg: RunConfig, log_path: Path) -> int:
    """Start one run in a fresh process and wait for it; Ctrl-C or SIGTERM here is passed on to it."""
    config_file = write_config(cfg)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if can_fork(cfg):
        try:
            child = _run_server(cfg.launcher.entry).start(config_file, log_path)
        except ServerGone as gone:  # it could not even start (e.g. its imports failed): the run leaves a failed row
            return LOST_WITH_SERVER if gone.returncode < 0 else gone.returncode
    else:
        child = _new_interpreter(config_file, log_path, cfg.train.devices, cfg.launcher.entry)
    with _live_lock:
        _live.add(child)
    try:
        return child.wait()
    finally:
        with _live_lock:
            _live.discard(child)


def can_fork(cfg: RunConfig) -> bool:
    """A run may be forked from the run server: one rank, on a machine without a GPU it could touch
    (mode=predict with device=cuda runs on fake tensors, so it forks too where there is no GPU)."""
    return cfg.train.devices == 1 and not torch.cuda.is_available()


def _new_interpreter(config_file: Path, log_path: Path, devices: int, entry: str) -> subprocess.Popen:
    """`python -m ENTRY --config-file F` (or torchrun starting it on every rank) as a new process."""
    with open(log_path, "w") as log:
        return subprocess.Popen(child_command(config_file, devices, entry), stdout=log, **_child_options())


def _child_options() -> dict:
    """Own session: a terminal's Ctrl-C reaches the launcher, which forwards it once as SIGTERM. The child
    dies with the launcher and shares the results directory's lock, which stays held until it is gone."""
    return dict(stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
                start_new_session=True, preexec_fn=die_with_parent, pass_fds=tuple(h.fileno() for h in _held_lock))  # fmt: skip


# ---------------------------------------------------------------- the run server


class RunServer:
    """A process that imports the run entry module (launcher.entry) once and then only forks: one request at a time
    on its stdin (config file, log path), answered on its stdout (the run's pid, then its exit code). Each launching
    thread has its own, so the parallel launcher's runs start at once."""

    def __init__(self, entry: str) -> None:
        options = {**_child_options(), "stderr": None}  # its own complaints go to the launcher's stderr, not into the answers
        serve = f"import bench.launch; bench.launch.serve_runs({entry!r})"
        self.process = subprocess.Popen([sys.executable, "-c", serve], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, **options)  # fmt: skip

    def start(self, config_file: Path, log_path: Path) -> ForkedRun:
        self.process.stdin.write(json.dumps([str(config_file), str(log_path)]) + "\n")
        self.process.stdin.flush()
        return ForkedRun(self, self._answer())

    def _answer(self) -> int:
        """The server's next answer; anything else a library printed on its stdout is passed on."""
        while line := self.process.stdout.readline():
            if line.startswith(ANSWER):
                return int(line[len(ANSWER) :])
            sys.stdout.write(line)
        raise ServerGone(self.process.wait())  # the server died (and, by their parent-death signal, its runs)

    def close(self) -> None:
        """End of stdin: the server exits (it also does when its launcher dies)."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=60)  # a run it started but nobody waited for (an interrupt) ends first
        except OSError:
            pass
        except subprocess.TimeoutExpired:
            self.process.kill()  # and its runs with it (parent-death signal)
            self.process.wait()


class ServerGone(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(f"the run server exited with {returncode}")
        self.returncode = returncode


class ForkedRun:
    """A run forked by a RunServer, with the three calls of `subprocess.Popen` the launcher uses."""

    def __init__(self, server: RunServer, pid: int) -> None:
        self.server, self.pid, self.returncode = server, pid, None

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (negative: killed by that signal), read from the server by the thread that started
        the run. With a timeout (stopping runs, from any thread): wait for the process to be gone."""
        if timeout is None:
            if self.returncode is None:
                try:
                    self.returncode = self.server._answer()
                except ServerGone:  # the server died, and its runs with it (parent-death signal)
                    self.returncode = LOST_WITH_SERVER
            return self.returncode
        deadline = time.monotonic() + timeout
        while self._alive():  # the server reaps its runs at once, so an exited run is soon no process at all
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"run {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode if self.returncode is not None else 0

    def _alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def send_signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_servers: dict[tuple[int, str], RunServer] = {}  # (launching thread, entry) -> its run server (closed by launch_all)


def _run_server(entry: str) -> RunServer:
    key = (threading.get_ident(), entry)
    if key not in _servers or _servers[key].process.poll() is not None:
        _servers[key] = RunServer(entry)
    return _servers[key]


def close_run_servers() -> None:
    while _servers:
        _servers.popitem()[1].close()


def serve_runs(entry: str) -> None:
    """The run server's loop (see RunServer). Single-threaded, so a fork copies no lock held by another thread."""
    module = importlib.import_module(entry)  # the imports every run needs, once: the point of the server
    imported = resident_file_pages()  # what a new interpreter holds after these imports, and a forked child lacks
    for line in sys.stdin:
        config_file, log_path = json.loads(line)
        pid = os.fork()
        if pid == 0:
            touch_pages(imported)  # so the run's RSS counts what a new `python -m bench.run` would count
            os._exit(_forked_run(module, config_file, log_path))
        print(f"{ANSWER}{pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"{ANSWER}{os.waitstatus_to_exitcode(status)}", flush=True)


def _forked_run(module, config_file: str, log_path: str) -> int:
    """In a child of the server: `python -m ENTRY --config-file F`, with what _child_options sets up."""
    try:
        os.setsid()
        os.environ[PARENT_PID_ENV] = str(os.getppid())  # the server, which dies with the launcher
        die_with_parent()
        _name_process(module.__name__)  # how ps and psutil's name() tell a run from its server
        os.chdir(PROJECT_ROOT)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        sys.argv = [sys.executable, "-m", module.__name__, "--config-file", config_file]
        code = module.main(sys.argv[3:])  # the server imported it; `python -m` would run main
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child must never return into the server's loop
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def _name_process(name: str) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def stop_children(timeout: float = 30.0) -> None:
    """SIGTERM every live child (each records an `interrupted` row), then wait; SIGKILL stragglers."""
    with _live_lock:
        children = list(_live)
    for child in children:
        child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()


def record_lost_run(cfg: RunConfig, returncode: int, log_path: Path) -> str:
    """A child that exited without a row (e.g. killed by the OOM killer) still leaves one."""
    config_file = Path(cfg.results.dir) / CONFIGS_DIR / f"{cfg.run_id}.json"
    record = describe(cfg, " ".join(["python", *child_command(config_file, 1, cfg.launcher.entry)[1:]]))
    if returncode == LOST_WITH_SERVER:
        status, reason = "failed", "killed with its run server (the server died or was killed; the run was not at fault)"
    elif returncode == -signal.SIGKILL:  # on Linux, almost always the kernel's out-of-memory killer
        status, reason = "oom", "killed by SIGKILL (most likely the kernel's out-of-memory killer)"
    elif returncode < 0:
        status, reason = "failed", f"killed by signal {-returncode}"
    else:
        status, reason = "failed", f"exited with code {returncode} without a result"
    record.update(status=status, error_type="ChildProcessError", error_message=f"{reason}; see {log_path}")
    write_run(Path(cfg.results.dir), record)
    return status


def launch_run(cfg: RunConfig) -> str:
    """Run one configuration in its own process; its row's status."""
    results_dir = Path(cfg.results.dir)
    log_path = results_dir / "logs" / f"{cfg.run_id}.out"
    returncode = run_child(cfg, log_path)
    row = read_run(results_dir, cfg.run_id)
    return row.status if row is not None else record_lost_run(cfg, returncode, log_path)


# ---------------------------------------------------------------- many children


OnDone = Callable[[RunConfig, str], None]
Launcher = Callable[[list[RunConfig], OnDone], None]
LAUNCHERS: dict[str, Launcher] = {}  # launcher.name -> how a batch of runs is started (conf/launcher/<name>.yaml)


def register_launcher(name: str) -> Callable[[Launcher], Launcher]:
    """Decorator: make a launcher findable by the `launcher.name` that selects it."""

    def add(launcher: Launcher) -> Launcher:
        LAUNCHERS[name] = launcher
        return launcher

    return add


def launch_all(configs: list[RunConfig], on_done: OnDone) -> None:
    """Launch every config with the launcher they share (`launcher.name`), calling `on_done` per run;
    an interrupt stops every child this process started (each records an `interrupted` row)."""
    if not configs:
        return
    name = configs[0].launcher.name
    if name not in LAUNCHERS:
        raise BenchError(f"unknown launcher {name!r}; choose from {', '.join(LAUNCHERS)}")
    try:
        LAUNCHERS[name](configs, on_done)
    except KeyboardInterrupt:
        stop_children()
        raise
    finally:
        close_run_servers()  # before the caller lets go of the results lock, which the servers share


@register_launcher("local")
def launch_sequentially(configs: list[RunConfig], on_done: OnDone) -> None:
    """One child at a time: the only launcher whose timings no other run of the sweep perturbs."""
    for cfg in configs:
        on_done(cfg, launch_run(cfg))


@register_launcher("parallel")
def launch_in_parallel(configs: list[RunConfig], on_done: OnDone) -> None:
    """`launcher.jobs` children at a time (their concurrency is recorded in every row)."""
    with ThreadPoolExecutor(max_workers=configs[0].launcher.jobs) as pool:
        futures = {pool.submit(launch_run, cfg): cfg for cfg in configs}
        for future, cfg in futures.items():
            on_done(cfg, future.result())


@register_launcher("slurm")
def launch_on_slurm(configs: list[RunConfig], on_done: OnDone) -> None:
    """Each child command as a job of one Slurm array, through submitit (`launcher.slurm`: its parameters)."""
    try:
        import submitit
    except ImportError:
        raise BenchError("launcher=slurm needs submitit: pip install -e \".[launchers]\"") from None
    first = configs[0]
    executor = submitit.AutoExecutor(folder=Path(first.results.dir) / "logs" / "submitit")
    executor.update_parameters(slurm_array_parallelism=first.launcher.jobs, **first.launcher.slurm)
    with executor.batch():
        jobs = [executor.submit(launch_run, cfg) for cfg in configs]
    for job, cfg in zip(jobs, configs):
        on_done(cfg, job.result())


# ---------------------------------------------------------------- the results directory


@contextmanager
def results_lock(results_dir: Path) -> Iterator[None]:
    """Hold `results_dir`'s lock: a second sweep or run into the same directory fails with one line
    while this one (or a child it started) is alive."""
    if os.environ.get(PARENT_PID_ENV):  # a launched child: its parent holds the lock for it
        yield
        return
    results_dir.mkdir(parents=True, exist_ok=True)
    handle = open(results_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise BenchError(f"results.dir {results_dir} is in use by {holder}; wait for it to finish or use another results.dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} ({' '.join(sys.argv[:4])})")
    handle.flush()
    _held_lock.append(handle)
    try:
        yield
    finally:
        _held_lock.remove(handle)
        handle.close()
