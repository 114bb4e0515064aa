"""newsletter: compose e-mail newsletters from the latest posts and send them to lists."""

__version__ = "0.1.0"
