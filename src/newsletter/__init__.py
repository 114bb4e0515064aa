"""newsletter: compose e-mail newsletters from the latest posts and send them to lists."""

__version__ = "0.1.0"


def run() -> None:
    """The ``newsletter`` script and ``python -m newsletter``: the command line, whose
    modules (click's too) load with the cyclic garbage collector paused, as ``cli.run``
    explains: pausing it only once click had loaded left a hundredth of a dry run's
    instructions to collections that find nothing."""
    import gc

    gc.disable()
    from .cli import run as command_line

    command_line()
