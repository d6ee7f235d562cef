"""A service freezes what it loaded at start-up out of the garbage collector's passes, and still collects what it
makes later. Each case runs in a process of its own: freezing is for the life of a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_what_start_up_loaded_is_frozen_and_later_garbage_is_still_collected() -> None:
    out = run_python(
        """
        import asyncio, contextlib, gc
        from newsflow_shared.service import _frozen_after

        loaded = {}

        @contextlib.asynccontextmanager
        async def lifespan():
            loaded["model"] = [{"weights": i} for i in range(1000)]  # what a service keeps for its whole life
            yield

        async def main():
            async with _frozen_after(lifespan)():
                in_sight = {id(o) for o in gc.get_objects()}
                print(gc.get_freeze_count() > 0, id(loaded["model"]) in in_sight)
                cycle = []
                cycle.append(cycle)  # garbage made after start-up, only the collector can free
                del cycle
                print(gc.collect() >= 1)

        asyncio.run(main())
        """
    )
    assert out.splitlines() == ["True False", "True"]


def test_a_service_without_a_lifespan_freezes_its_imports() -> None:
    out = run_python(
        """
        import asyncio, gc
        from newsflow_shared.service import _frozen_after

        async def main():
            async with _frozen_after(None)():
                print(gc.get_freeze_count() > 10_000)

        asyncio.run(main())
        """
    )
    assert out == "True"
