"""The ``newsflow`` command: push, tail, run, process, and the set-up around them."""
