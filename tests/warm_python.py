"""A Python that has already imported torch and the entry scripts, for tests that run many scripts.

    python tests/warm_python.py serve SOCKET          # imports once, then forks a child per call
    python tests/warm_python.py call SOCKET ARGS...   # runs `python ARGS...` in such a child
    warm_python.run([SCRIPT, ARGS...], cwd=...)       # from a test: subprocess.run's answer, one server a session

A call behaves as `python ARGS...` would from the caller's shell: the child takes the caller's
working directory, environment, stdin, stdout and stderr (passed over the Unix socket), runs the
script as __main__ (or `-c CODE`), and the caller exits with the child's exit status. Each call
is still a process of its own; what it saves is importing torch again (about 3 s of CPU a call
on 2 cores). The server handles one call at a time, as a shell script calls them.
"""
import atexit
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRELOADED = ("torch", "torchvision", "train_vanilla", "train_ctc", "transfer", "mine", "geometry",
             "scripts.plot_tradeoff")
HEADER = 8  # bytes of the request's length
PLAIN_PATH = sys.path[1:]  # what `python SCRIPT` has after the script's own folder


def run_child(request):
    """In the forked child: become `python ARGV` and return its exit status."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    argv = request["argv"]
    try:
        if argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            sys.path[:] = ["", *PLAIN_PATH]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.argv = list(argv)
            sys.path[:] = [str(Path(argv[0]).resolve().parent), *PLAIN_PATH]
            runpy.run_path(argv[0], run_name="__main__")
        return 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:  # noqa: BLE001 - as the interpreter does: the traceback and status 1
        traceback.print_exc()
        return 1


def receive(connection):
    header, fds, _, _ = socket.recv_fds(connection, HEADER, 3)
    size = int.from_bytes(header, "big")
    body = b""
    while len(body) < size:
        body += connection.recv(size - len(body))
    return json.loads(body), fds


def serve(path):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT))
    import importlib
    for name in PRELOADED:
        importlib.import_module(name)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    print("ready", flush=True)
    while True:
        connection, _ = server.accept()
        with connection:
            request, fds = receive(connection)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                server.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                code = run_child(request)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            for fd in fds:
                os.close(fd)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            connection.sendall(str(code if code >= 0 else 128 - code).encode())


def call(path, argv):
    body = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(path)
        socket.send_fds(connection, [len(body).to_bytes(HEADER, "big")], [0, 1, 2])
        connection.sendall(body)
        answer = b""
        while chunk := connection.recv(16):
            answer += chunk
    return int(answer or b"1")


_server = {}


def server_socket():
    """The socket of this test session's server, started on first use and stopped at exit."""
    if not _server:
        folder = tempfile.mkdtemp(prefix="warm")  # short: a Unix socket's path allows ~100 bytes
        path = os.path.join(folder, "socket")
        process = subprocess.Popen([sys.executable, __file__, "serve", path], stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the warm Python server did not start")

        def stop():
            process.kill()
            process.wait()
            for name in (path, folder):
                if os.path.exists(name):
                    (os.remove if name == path else os.rmdir)(name)
        atexit.register(stop)
        _server.update(path=path)
    return _server["path"]


def run(argv, cwd, env=None, timeout=300):
    """`python ARGV` in a child of the warm server, as subprocess.run(capture_output=True, text=True)
    answers it; ENV is added to this process's environment (with OMP_NUM_THREADS=1)."""
    return subprocess.run([sys.executable, __file__, "call", server_socket(), *map(str, argv)], cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(call(sys.argv[2], sys.argv[3:]))
