"""How an active run ends when its script does not call ``finish`` (W&B's own snippets don't).

- Normal interpreter exit: finished with the exit status, ``finished`` for 0, else ``failed``
  (``sys.exit(code)`` is noted on the way out, as W&B does, since ``atexit`` cannot see it).
- An uncaught exception (``KeyboardInterrupt`` included): ``crashed``, exit code 1.
- SIGTERM or SIGHUP while Python's default action would kill the process silently: ``crashed``
  with exit code 128 + the signal, then the process dies of the signal as it would have.
- A forked child (DataLoader workers, multiprocessing) inherits these hooks but never ends the
  run of the process that started it.
- A process killed without a chance to act (SIGKILL, the OOM killer) cannot record anything:
  :mod:`artfs.run_ends` finds such runs crashed the next time someone looks.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import weakref
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from artfs.sdk.run import Run

# Each watched run with the pid of the process that started it: a forked child (a DataLoader
# worker, a multiprocessing pool member) inherits the hooks, and its exit or SIGTERM must not
# end its parent's run.
_runs: weakref.WeakKeyDictionary[Run, int] = weakref.WeakKeyDictionary()
_installed = False
_exit_code = 0
_crashed = False
_original_exit = sys.exit
_original_excepthook = sys.excepthook
_FATAL = (signal.SIGTERM, signal.SIGHUP)
SIGNAL_GRACE_SECONDS = 5.0


def watch(run: Run) -> None:
    """End ``run`` with the process if nobody finishes it first."""
    _runs[run] = os.getpid()
    global _installed
    if not _installed:
        _installed = True
        atexit.register(_at_exit)
        sys.exit = _exit
        sys.excepthook = _excepthook
        _install_signal_handlers()


def _end_all(exit_code: int, crashed: bool) -> None:
    me = os.getpid()
    for run in [run for run, pid in list(_runs.items()) if pid == me]:
        try:
            run._end(exit_code, crashed=crashed)
        except Exception as exc:  # the process is ending: say so, do not mask the real exit
            print(f"artfs: run {run.id} could not be finished: {exc}", file=sys.stderr)


def _at_exit() -> None:
    _end_all(1 if _crashed else _exit_code, crashed=_crashed)


def _exit(status: Any = None) -> NoReturn:
    global _exit_code
    _exit_code = status if isinstance(status, int) else 0 if status is None else 1
    _original_exit(status)
    raise AssertionError("unreachable")  # pragma: no cover


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    global _crashed
    _crashed = True
    _end_all(1, crashed=True)
    _original_excepthook(exc_type, exc, traceback)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for signum in _FATAL:
        if signal.getsignal(signum) is signal.SIG_DFL:  # a handler of the script's own stays
            signal.signal(signum, _on_fatal_signal)


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    # The handler runs in the main thread between two bytecodes, possibly inside an open index
    # write of this very thread (a log flush, a commit), which a write made here would wait
    # for for ever. A worker thread's write waits for that one instead; if it has not landed
    # within the grace period the process dies anyway and the run is found crashed later.
    ender = threading.Thread(target=_end_all, args=(128 + signum, True), daemon=True)
    ender.start()
    ender.join(SIGNAL_GRACE_SECONDS)
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
