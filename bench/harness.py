"""What the benchmarks share: the machine, a temporary project, and its processes.

A benchmark runs in one "orchestrator" process that holds the emulator of Replicate or
of Google's Gemini API (so it can read its counters), publishes articles and watches the
database; the example project's django-q2 cluster and, for webhooks, its web server run
as separate processes on the same temporary SQLite file, as they would in production.
Each child gets its own process group, so that stopping it takes its workers too,
whatever way the benchmark ends (normally, by an error, Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"


def machine() -> str:
    """One line naming what the figures were measured on."""
    import django

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = f" ({line.split(':', 1)[1].strip()})"
                break
    return (
        f"Machine: {os.cpu_count()} cores{model}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Django {django.get_version()}; "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def exit_on_sigterm() -> None:
    """Make SIGTERM and SIGINT raise, so that ``finally`` blocks stop the children.

    SIGINT too: a shell without job control starts background commands with it ignored.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``; Ctrl-C ends it quietly once its children are stopped."""
    exit_on_sigterm()
    try:
        main()
    except KeyboardInterrupt:
        print("\nInterrupted; every process it started has been stopped.", file=sys.stderr)
        raise SystemExit(130) from None


PROVIDER_ENVIRONMENT = (
    "REPLICATE_API_TOKEN",
    "REPLICATE_BASE_URL",
    "NANOBANANA_PUBLIC_URL",
    "NANOBANANA_PROVIDER",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
    "GEMINI_CONCURRENCY",
)


def run_in_workspace(
    parser: argparse.ArgumentParser,
    run: Callable[[Path, argparse.Namespace], None],
    *,
    prefix: str,
    timeout: str,
) -> None:
    """Add the cluster benchmarks' common options, parse, and ``run`` on a fresh project."""
    parser.add_argument(
        "--q-poll", type=float, metavar="S", help="Q_CLUSTER['poll'] (default: the project's)"
    )
    parser.add_argument("--timeout", type=float, help=f"give up after (default: {timeout})")
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and the processes' logs"
    )
    args = parser.parse_args()
    with workspace(prefix, keep=args.keep) as workdir:
        setup_django(workdir)
        run(workdir, args)


def setup_django(workdir: Path) -> None:
    """Point this process at a fresh example project in ``workdir`` and migrate it."""
    for path in (str(EXAMPLE), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["DEMO_DATABASE"] = str(workdir / "bench.sqlite3")
    os.environ["DEMO_MEDIA_ROOT"] = str(workdir / "media")
    os.environ["BENCH_LOG_LEVEL"] = "WARNING"  # this process only watches
    for name in PROVIDER_ENVIRONMENT:  # no real key or endpoint reaches a benchmark
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


def configure(emulator: Any, *, public_url: str = "", **nanobanana: Any) -> dict[str, Any]:
    """Point this process's ``NANOBANANA`` at the emulator; returns the overrides."""
    from django.conf import settings

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **emulator.settings(),
        "PUBLIC_URL": public_url,
        "WEBHOOK_SECRET": getattr(emulator, "webhook_secret", ""),
        **nanobanana,
    }
    return nanobanana


def child_env(
    workdir: Path,
    emulator: Any,
    *,
    public_url: str = "",
    nanobanana: dict[str, Any] | None = None,
    q_cluster: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The environment of a cluster or web process of the project in ``workdir``."""
    python_path = [str(ROOT), str(EXAMPLE), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in python_path if p),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEMO_DATABASE": str(workdir / "bench.sqlite3"),
        "DEMO_MEDIA_ROOT": str(workdir / "media"),
        **provider_env(emulator),
        "NANOBANANA_PUBLIC_URL": public_url,
        "BENCH_NANOBANANA": json.dumps(nanobanana or {}),
        "BENCH_Q_CLUSTER": json.dumps(q_cluster or {}),
        "BENCH_LOG_LEVEL": "INFO",
    }


def provider_env(emulator: Any) -> dict[str, str]:
    """The example project's environment variables that point it at ``emulator``."""
    from nanobanana_django.testing.gemini import GeminiEmulator

    if isinstance(emulator, GeminiEmulator):
        return {
            "NANOBANANA_PROVIDER": "gemini",
            "GEMINI_API_KEY": emulator.api_key,
            "GEMINI_BASE_URL": emulator.base_url,
        }
    return {
        "REPLICATE_API_TOKEN": emulator.token,
        "REPLICATE_BASE_URL": emulator.base_url,
        "REPLICATE_WEBHOOK_SECRET": emulator.webhook_secret,
    }


@contextlib.contextmanager
def workspace(prefix: str, *, keep: bool = False) -> Iterator[Path]:
    """A temporary directory for the database, media and logs; ``keep`` leaves it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"Kept the database and the logs in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``condition`` until it is truthy (returned); TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Processes:
    """Child processes of one benchmark, each in its own process group, with a log file."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in list(self.running):
            self.stop(name)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its workers
        )
        self.running[name], self._logs[name] = process, log
        return process

    def stop(self, name: str) -> None:
        """Kill the whole group: the cluster's workers die with it, mid-task or not."""
        process = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self._logs.pop(name).close()

    def check(self, name: str) -> None:
        """Fail loudly, with the end of its log, if ``name`` has died."""
        process = self.running[name]
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with status {process.returncode}:\n{self.tail(name)}"
            )

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def start_cluster(self, env: dict[str, str], name: str = "cluster") -> None:
        """``qcluster``, returning once it has run a task (so start-up is not measured)."""
        from django_q.tasks import async_task, result

        self.start(name, ["-m", "django", "qcluster"], env)
        task_id = async_task("bench.tasks.ping")

        def ready() -> bool:
            self.check(name)
            return result(task_id) == "pong"

        wait_for(ready, 60, "the django-q2 cluster to start", every=0.1)

    def start_web(self, env: dict[str, str], port: int, name: str = "web") -> None:
        """The example project's ``runserver`` on 127.0.0.1:``port``, once it answers."""
        import httpx

        self.start(name, ["-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"], env)

        def answers() -> bool:
            self.check(name)
            try:
                httpx.get(f"http://127.0.0.1:{port}/nanobanana/webhooks/replicate/", timeout=1)
            except httpx.TransportError:
                return False
            return True

        wait_for(answers, 60, "the web server to start", every=0.1)


def reset_shared_state() -> None:
    """Forget queued tasks and the shared cache (the poller's lease, rate-limit slots).

    Between two clusters of one benchmark: a poller killed with its cluster leaves its
    lease behind, and the next cluster would wait for it to expire.
    """
    from django.core.cache import caches
    from django_q.models import OrmQ

    from nanobanana_django.conf import app_settings

    OrmQ.objects.all().delete()
    caches[app_settings.CACHE].clear()


def create_drafts(count: int) -> None:
    """``count`` draft articles without images, after clearing the last run's rows.

    Created in bulk (no signals): nothing is queued until the backfill command runs.
    """
    from blog.models import Article

    from nanobanana_django.models import GeneratedImage

    reset_shared_state()
    GeneratedImage.objects.all().delete()
    Article.objects.all().delete()
    Article.objects.bulk_create(
        Article(title=f"Archive post {i}", topic="benchmarks") for i in range(count)
    )


def queue_backfill() -> float:
    """``nanobanana_generate blog.Article --missing-only --include-unpublished --no-wait``
    (the run's articles are drafts); returns its start."""
    from django.core.management import call_command

    started = time.time()
    call_command(
        "nanobanana_generate",
        "blog.Article",
        "--missing-only",
        "--include-unpublished",
        "--no-wait",
        stdout=io.StringIO(),
    )
    return started


@dataclass
class Backfilled:
    """How a backfill of ``articles`` ended: what every backfill benchmark reports."""

    articles: int
    seconds: float  # from queueing to the last image stored (or to the timeout)
    timed_out: bool
    done: int
    failed: int
    attached: int
    errors: list[str]  # the failed rows' distinct errors, with how many of each

    def summary(self) -> str:
        status = "TIMED OUT, " if self.timed_out else ""
        return (
            f"{status}{self.seconds:.1f} s for {self.articles} articles "
            f"({self.done / self.seconds:.1f} images/s); {self.done} succeeded, "
            f"{self.failed} failed, {self.attached} attached"
        )

    def problems(self) -> list[str]:
        problems = []
        if self.timed_out:
            problems.append(f"timed out with {self.done} of {self.articles} done")
        if self.done != self.articles or self.attached != self.articles:
            problems.append(
                f"{self.done} succeeded and {self.attached} attached of {self.articles}"
            )
        problems.extend(f"failed: {error}" for error in self.errors)
        return problems


def await_backfill(
    processes: Processes, cluster: str, count: int, started: float, timeout: float
) -> Backfilled:
    """Wait for ``count`` finished generations; the time runs from ``started`` to the last
    row's ``finished_at`` (or to the timeout)."""
    from blog.models import Article
    from django.db.models import Max

    from nanobanana_django.models import GeneratedImage

    Status = GeneratedImage.Status
    rows = GeneratedImage.objects.all()

    def all_finished() -> bool:
        processes.check(cluster)
        return rows.count() == count and not GeneratedImage.objects.unfinished().exists()

    timed_out = False
    try:
        wait_for(all_finished, timeout, f"{count} generations ({cluster})", every=0.2)
    except TimeoutError:
        timed_out = True
    last = None if timed_out else rows.aggregate(last=Max("finished_at"))["last"]
    failed = rows.filter(status__in=[Status.FAILED, Status.CANCELED])
    errors = Counter(failed.values_list("error_code", "error_message"))
    return Backfilled(
        articles=count,
        seconds=(time.time() if last is None else last.timestamp()) - started,
        timed_out=timed_out,
        done=rows.filter(status=Status.SUCCEEDED).count(),
        failed=failed.count(),
        attached=Article.objects.exclude(header_image="").count(),
        errors=[f"{count} x {code}: {message}" for (code, message), count in errors.items()],
    )


@contextlib.contextmanager
def emulator_running(*, provider: str = "replicate", **attributes: Any) -> Iterator[Any]:
    """An emulator of ``provider`` ("replicate" or "gemini") on 127.0.0.1 with
    ``attributes`` set, stopped afterwards."""
    from nanobanana_django.testing import ReplicateEmulator
    from nanobanana_django.testing.gemini import GeminiEmulator

    emulator = GeminiEmulator() if provider == "gemini" else ReplicateEmulator()
    for key, value in attributes.items():
        setattr(emulator, key, value)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
