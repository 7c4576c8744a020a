"""``scenedex`` run in the test process with typer's ``CliRunner`` (issue 27): the same typer app
the console script runs, without a new interpreter importing torch and open_clip and loading the
models for every command. The subprocess smoke tests (``tests/e2e/test_cli_real_media.py``) keep
the real entry point covered (exit code, stdout JSON, stderr progress).

What a process would start fresh and this one keeps between invocations, and how:

- settings: read from ``os.environ`` when a command builds them; ``CliRunner.invoke(env=...)``
  sets the invocation's variables (None unsets one) and restores the environment afterwards;
- logging: ``configure_logging`` replaces the root logger's handlers with one on the stderr of
  the invocation (a stream that is gone afterwards): the root logger's handlers and level are
  put back after each invocation;
- database engines: each command's composition root creates an engine; they are disposed after
  the invocation (no pooled connections left to the garbage collector);
- models: the CLIP, text and face embedders are shared between invocations whose settings
  differ only in database, storage, Redis and logging (``_ModelCache``): loading them is what a
  fresh process pays, and the untrained CLIP weights come from a fixed seed, so a shared model is
  the same model;
- dramatiq's global broker: the first command that enqueues installs one on
  ``SCENEDEX_REDIS_URL`` (as any runtime of the test process does) and it stays.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from click.testing import Result
from typer.testing import CliRunner

_PER_INVOCATION = {"database_url", "storage_url", "redis_url", "log_level", "log_format"}
"""Settings that do not change what an embedder computes (the model cache's key leaves them out)."""


class _ModelCache:
    """The composition root's embedder factories (``application.root._clip``, ``_text``,
    ``_faces``), memoized on the settings that are not ``_PER_INVOCATION``."""

    def __init__(self) -> None:
        self.built: dict[tuple[str, str], Any] = {}
        self.hits = 0

    def wrap(self, name: str, make: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def cached(settings: Any) -> Any:
            key = (name, settings.model_dump_json(exclude=_PER_INVOCATION))
            if key in self.built:
                self.hits += 1
            else:
                self.built[key] = make(settings)
            return self.built[key]

        return cached


class InProcessCli:
    """``scenedex ARGS`` in this process. ``env``: variables set for every invocation on top of
    ``os.environ`` (a None value unsets one), each call adding its own."""

    def __init__(self, env: Mapping[str, str | None]) -> None:
        from scenedex.application import root

        self.env = dict(env)
        self.models = _ModelCache()
        self._factories = {name: getattr(root, name) for name in ("_clip", "_text", "_faces")}

    def __call__(self, *args: str, expect: int = 0, **env: str | None) -> Result:
        """Run the command; assert its exit code is ``expect`` and that it raised nothing but
        its exit (an unexpected exception is re-raised with its traceback: the console script
        would print one, which no command may do)."""
        from scenedex.scripts.cli import app

        with self._isolated():
            result = CliRunner().invoke(app, list(args), env={**self.env, **env})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"scenedex {' '.join(args)} raised (stderr: {result.stderr[-3000:]})") from (
                result.exception
            )
        assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr[-3000:])
        return result

    def json(self, *args: str, expect: int = 0, **env: str | None) -> Any:
        """``scenedex ARGS --json``: its stdout parsed (one JSON object)."""
        return json.loads(self(*args, "--json", expect=expect, **env).stdout)

    @contextmanager
    def _isolated(self) -> Iterator[None]:
        from scenedex.application import root

        engines: list[Any] = []
        create_engine = root.create_engine

        def tracked_engine(*args: Any, **kwargs: Any) -> Any:
            engine = create_engine(*args, **kwargs)
            engines.append(engine)
            return engine

        logger = logging.getLogger()
        handlers, level = logger.handlers[:], logger.level
        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(root, "create_engine", tracked_engine))
            for name, make in self._factories.items():
                stack.enter_context(mock.patch.object(root, name, self.models.wrap(name, make)))
            try:
                yield
            finally:
                logger.handlers[:] = handlers
                logger.setLevel(level)
                for engine in engines:
                    engine.dispose()
