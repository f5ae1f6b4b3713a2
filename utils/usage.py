"""How every command-line script stops on bad input: one line on stderr, `<script>: error: <what to change>`, exit
status 2, no traceback, nothing written. An unexpected exception (a bug) keeps its traceback: that is a bug report.

Imports nothing heavy (torch only inside device_problem), so a script can parse and check its arguments before it
imports torch. Usage:

    if __name__ == "__main__":
        run_entry_point(main)
"""
import argparse
import os
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UsageError(SystemExit):
    """A bad command line: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (argparse prints its usage above them), raised as UsageError."""

    def error(self, message):
        raise UsageError(f"{message} (--help lists the flags)")


def whole_number(minimum, maximum=None):
    """argparse type: an int in [minimum, maximum] (counts, sizes, seeds), so a bad value stops at parsing."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            wanted = f"at least {minimum}" if maximum is None else f"in {minimum} .. {maximum}"
            raise argparse.ArgumentTypeError(f"{value}: must be {wanted}")
        return value
    return parse


def output_path_problem(flag, path, file=False):
    """Why `path` (a folder to create, or with file=True a file to write) cannot be written, or None."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        if file and os.path.isdir(path):
            return f"{flag} {path} is a folder; give a file name"
        if not file and not os.path.isdir(path):
            return f"{flag} {path} is a file; give a folder"
        parent = path if not file else os.path.dirname(path)
    else:
        parent = os.path.dirname(path)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            return f"{flag} {path}: {parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{flag} {path}: {parent} is not writable"
    return None


def input_path_problem(flag, path, folder=False):
    """Why `path` (a file to read, or with folder=True a folder) is not there, or None."""
    if folder and not os.path.isdir(path):
        return f"{flag} {path}: no such folder" if not os.path.exists(path) else f"{flag} {path} is not a folder"
    if not folder and not os.path.isfile(path):
        return f"{flag} {path}: no such file" if not os.path.exists(path) else f"{flag} {path} is not a file"
    return None


def device_problem(flag, name):
    """Why torch cannot compute on the device called `name` here, or None."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        return f"{flag} {name}: not a device; use cpu, cuda or cuda:N"
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"{flag} {name}: no GPU is visible here; use {flag} cpu"
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        return f"{flag} {name}: this machine has {torch.cuda.device_count()} visible GPU(s)"
    return None


def check(*problems):
    """Stop at the first problem found (each a message, or None)."""
    for problem in problems:
        if problem:
            raise UsageError(problem)


def raised_by_this_project(error):
    """Whether `error` was raised by this repository's code (not a library's), i.e. its message is ours.

    ValueError: the configs, data and checkpoint loaders raise it with a message meant for the user. OSError only
    when we made it with a message (errno None): one from the operating system inside our code may be a bug.
    """
    if isinstance(error, OSError) and error.errno is not None:
        return False
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    where = os.path.abspath(frames[-1].filename)
    return where.startswith(ROOT + os.sep) and "site-packages" not in where


def run_entry_point(main):
    """Run a script's main() and return what it returns: our usage errors (UsageError; a ValueError or our OSError
    with a message for the user) become one line on stderr and exit status 2; anything else propagates with its
    traceback."""
    prog = os.path.relpath(os.path.abspath(main.__code__.co_filename), ROOT)
    try:
        return main()
    except UsageError as error:
        stop(prog, error.code)
    except (ValueError, OSError) as error:
        if not raised_by_this_project(error):
            raise
        stop(prog, error)


def stop(prog, message):
    print(f"{prog}: error: " + " ".join(str(message).split()), file=sys.stderr)  # a message of several lines: one
    sys.exit(2)
