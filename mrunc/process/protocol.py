"""How the runtime and the container's init talk while a container is being created.

`mrunc create` forks. The child unshares namespaces and forks again, and that grandchild is the
container's init (PID 1 of the new PID namespace). Parent and init keep one SOCK_SEQPACKET
socketpair: every message is one small JSON object (one datagram, so no framing is needed), and a
file descriptor can ride along with SCM_RIGHTS.

    from     message                              meaning / what the other side does next
    -------  -----------------------------------  -----------------------------------------------
    clone    {"t": "userns"}                      user namespace made; parent writes uid/gid maps
    parent   {"t": "maps-done"}                   clone child may now become root in it and go on
    clone    {"t": "pid", "pid": N}               init forked (N as the parent sees it); clone exits
    init     {"t": "phase", "phase": P,           phase P finished in ms, making these kernel calls
              "ms": F, "calls": [...]               (mrunc.record). Parent merges its own calls of
              [, "view": {...}]                     the phase in, reports the record (trace /
              [, "wait": false]}                    stepper), then answers when the next may run.
    parent   {"t": "continue"}                      "view", only when stepping: init's own view of
                                                    itself, for a caller who cannot read a
                                                    non-dumpable init from outside (selfview.py).
                                                    "wait": false — nobody reads the record, so
                                                    nobody pauses there: init goes straight on and
                                                    the parent sends no "continue" (init._Phases)
    init     {"t": "mount-source", "path": P,     (user namespace, runtime root on the host; mount
              "recursive": B} [+ fd]                phase; on a socket pair of its own, to the
                                                    runtime's helper thread) open bind source P for
                                                    me; the first request carries an fd of init's
                                                    mount namespace
    helper   {"t": "mount-source", "how": H,      P opened in there by the runtime (sources.py): a
              "calls": [...]} + fd                  detached mount ("tree") or an O_PATH fd ("path");
                                                    "errno" and "message" instead if it failed
    init     {"t": "cgroup-dirs"}                 (no cgroup namespace of the container's own:
    parent   {"t": "cgroup-dirs", "dirs": [...]}    parent._needs_cgroup_bind; in the mount phase)
                                                    the cgroup dirs, to be bound in: made as
                                                    the mount phase began, while init mounted
                                                    (parent._answer)
    init     {"t": "cgroup"}                      init is ready to be moved into its cgroup
    parent   {"t": "cgroup-done", "tasks": [...]} the limits are written, init is in the cgroups
             + one fd per v1 hierarchy              the parent moved it to; the `tasks` files of
                                                    the others, open: init writes "0" into each,
                                                    then may unshare CLONE_NEWCGROUP
    init     {"t": "hooks", "kind": K}            run hooks K (createRuntime…) in the runtime now
    parent   {"t": "hooks-done"}
    init     {"t": "console"} + fd                the pty master (terminal: true)
    init     {"t": "seccomp-program", "bpf": H,   (security phase) init built linux.seccomp's program
              "flags": N, "summary": S,              (hex H): the parent keeps it in the state dir
              "library": [...]}                      for exec, and in the user's cache (library: the
                                                    libseccomp file that built it). Not sent when
                                                    the clone child found it in that cache (Ctx)
    init     {"t": "seccomp"} + fd                the seccomp listener fd (SCMP_ACT_NOTIFY): parent
                                                    sends it to linux.seccomp.listenerPath
    init     {"t": "ready"}                       init is done; parent writes state.json, then
    parent   {"t": "recorded"}                      the hand-over: init blocks on exec.fifo, create
                                                    returns (init no longer dies with create)
    init     {"t": "error", "phase", "message",   a phase failed; parent cleans up and re-raises
              "syscall", "path", "errno",           it as InitError (one line on the CLI); "calls":
              "calls": [...]}                       the phase's calls so far (when recording)

There is no "abort" message: when the stepper says stop, the parent undoes the container — kills
init (SIGKILL), removes the cgroup and the state dir — as for any failed create.

After the hand-over the socket is closed; the last word goes through exec.fifo, to `start`: "0"
(then, when create was traced, the exec phase's calls as one JSON line, ending in the execve)
just before init execs, or "E<message>" if a startContainer hook or the execve failed.

Every receive names what it expected, so a protocol slip reads "expected continue, got ready"
instead of hanging or failing obscurely. An empty read means the other end died: init then exits
quietly (its creator is gone, nobody will start it), and the parent reports that init died, in
which phase and of what ("init died during phase mount (killed by SIGKILL)").

The sockets are `_socket`'s, the C module under `socket`, and the JSON is `_json`'s (fastjson):
`socket` and `json` import enum, re and more, a third of what create costs in imports.
"""
import _socket
import sys

from .. import fastjson

_FD_SIZE = 4    # an fd in an SCM_RIGHTS message is a C int
# Each message is read at its own length, asked first with MSG_PEEK | MSG_TRUNC (the kernel then
# says how long the datagram is, taking nothing): a read shorter than the datagram would cut it
# silently, and one of a fixed 256 KiB (room for the largest a send buffer lets through) had
# Python map, shrink and unmap that much memory for every message of a few dozen bytes —
# ≈ 15 µs of CPU each, against ≈ 3 µs for the peek and a read of the right size.
_PEEK = bytearray(1)    # where the peek puts the first byte (never looked at)


class ProtocolError(Exception):
    pass


def pair():
    """Two connected SOCK_SEQPACKET unix sockets (close-on-exec), for the two sides of a fork.
    `_socket` readies its socket type only when a first method is looked up on it (PyType_Ready:
    the type's dict, a descriptor for each method, their names interned): done here, once, before
    the fork — not after it in each process, where it copied ≈ 45 pages (copy-on-write) in each."""
    _socket.socket.close  # noqa: B018 — the look-up readies the type
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def send(sock, msg, fds=()):
    data = fastjson.dumps(msg, compact=True).encode()
    if fds:
        ints = b"".join(fd.to_bytes(_FD_SIZE, sys.byteorder, signed=True) for fd in fds)
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, ints)])
    else:
        sock.send(data)


def _size(sock):
    """The length of the next message, waiting for one; 0 when the other end has closed."""
    return sock.recv_into(_PEEK, 1, _socket.MSG_PEEK | _socket.MSG_TRUNC)


def _recv_with_fds(sock, size, max_fds=4):
    """One message and the fds that came with it (SCM_RIGHTS), close-on-exec from the moment
    they are ours (MSG_CMSG_CLOEXEC): no window in which an exec could take them along, and no
    fcntl for each afterwards."""
    data, ancillary, _, _ = sock.recvmsg(size, _socket.CMSG_SPACE(max_fds * _FD_SIZE),
                                         _socket.MSG_CMSG_CLOEXEC)
    fds = []
    for level, kind, ints in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += [int.from_bytes(ints[i:i + _FD_SIZE], sys.byteorder, signed=True)
                    for i in range(0, len(ints) - _FD_SIZE + 1, _FD_SIZE)]
    return data, fds


def recv(sock, expect=None, with_fds=False, max_fds=4):
    """Receive one message; with `expect`, anything but that type (or "error") is a ProtocolError."""
    size = _size(sock)
    if not size:
        data, fds = b"", []
    elif with_fds:
        data, fds = _recv_with_fds(sock, size, max_fds)
    else:
        data, fds = sock.recv(size), []
    if not data:
        raise EOFError(f"peer closed while waiting for {expect or 'a message'}")
    msg = fastjson.loads(data)
    if expect is not None and msg.get("t") not in (expect, "error"):
        raise ProtocolError(f"expected {expect!r}, got {msg.get('t')!r}")
    if with_fds:
        msg["_fds"] = fds
    return msg


def error_message(phase, exc):
    """Turn an exception raised in init into the structured error sent home."""
    msg = {"t": "error", "phase": phase, "message": str(exc)}
    if isinstance(exc, OSError) and exc.strerror:
        # our Syscalls put "what: why" in strerror and the path in filename; str() would add noise
        msg.update(errno=exc.errno, path=exc.filename, message=exc.strerror)
    return msg


