"""Keep a copy of everything printed to the terminal in the run folder."""
import sys


class Tee:
    """A stream that writes to the original stream and appends to a file."""

    def __init__(self, stream, path):
        self.stream = stream
        self.file = open(path, "a", buffering=1, encoding="utf-8")

    def write(self, text):
        self.stream.write(text)
        self.file.write(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def isatty(self):
        return self.stream.isatty()

    def fileno(self):
        return self.stream.fileno()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def tee_console(path):
    """Mirror stdout and stderr into `path` (appending) for the rest of the process."""
    sys.stdout = Tee(sys.stdout, path)
    sys.stderr = Tee(sys.stderr, path)
