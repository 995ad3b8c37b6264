"""Reading a cgroup's files — apart from the rest of mrunc.cgroups.fs (writing, making and
removing directories), which `state` does not need: it reads one file, the freezer's (is the
container paused?), and fs's import would cost it ≈ 0.1 ms of CPU. fs offers these too
(fs.read…), where every other caller has them.
"""
import posix as os  # os's C module: the same calls, without os's ≈ 1 ms import (mrunc.paths)


def reason(e):
    """What an OSError says, without its numbers: "Invalid argument"."""
    return os.strerror(e.errno) if e.errno else str(e)


def read(path, default=None):
    """The file's text without the trailing newline; `default` if it does not exist."""
    if path is None:
        return default
    from mrunc.state import read_file  # loaded already by every command that reads one
    try:
        # Bytes through a plain fd (open, read, close: a file object adds an fstat, an ioctl,
        # two lseeks), decoded here: the kernel writes ASCII, and a command's first text-mode
        # file costs ≈ 45 µs more (its decoder is set up) — `state` reads just this one.
        return read_file(path).decode().rstrip("\n")
    except (FileNotFoundError, NotADirectoryError):
        return default
    except OSError as e:
        import errno    # here, not at the top: only a failure needs its names (≈ 50 µs)
        if e.errno == errno.ENODEV:  # the cgroup was removed under us
            return default
        from mrunc.errors import CgroupError
        raise CgroupError(f"reading {path}: {reason(e)}") from e


def read_int(path):
    """An integer file ("max" and absent files give None)."""
    text = read(path)
    if text is None or text.strip() in ("", "max"):
        return None
    return int(text.split()[0])


def read_keyed(path):
    """A flat-keyed file ("key value" per line, like cpu.stat or memory.events) as a dict of ints."""
    out = {}
    for line in (read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out
