"""`mrunc kernel install`: the "Python 3 (mrunc)" Jupyter kernelspec (kernel/mrunc/kernel.json).

A kernelspec is a directory holding kernel.json (the command line Jupyter runs to start a kernel,
with `{connection_file}` filled in) and logos. Ours starts an IPython kernel with `--ext mrunc`,
so every notebook on it has the container magics. jupyter_client's KernelSpecManager copies the
directory to where Jupyter looks: <sys.prefix>/share/jupyter/kernels/mrunc (--sys-prefix),
~/.local/share/jupyter/kernels/mrunc (--user), or <prefix>/share/jupyter/kernels/mrunc.
"""
import json
import os
import shutil
import sys
import tempfile

NAME = "mrunc"
SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernel", NAME)
DEFAULT_SPEC = {
    "argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}", "--ext", "mrunc"],
    "display_name": "Python 3 (mrunc)",
    "language": "python",
    "env": {"PYTHONUNBUFFERED": "1"},
    "metadata": {"debugger": True},
}


def spec(python=None) -> dict:
    """kernel/mrunc/kernel.json (or its built-in copy), argv[0] = this interpreter."""
    try:
        with open(os.path.join(SOURCE, "kernel.json")) as f:
            d = json.load(f)
    except OSError:
        d = json.loads(json.dumps(DEFAULT_SPEC))
    d["argv"][0] = python or sys.executable
    return d


def install(user=False, prefix=None, python=None) -> str:
    """Install the kernelspec; returns the directory it went to. Default: sys.prefix."""
    from jupyter_client.kernelspec import KernelSpecManager
    if not user and prefix is None:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, NAME)
        os.mkdir(d)
        with open(os.path.join(d, "kernel.json"), "w") as f:
            json.dump(spec(python), f, indent=2)
            f.write("\n")
        _logos(d)
        return KernelSpecManager().install_kernel_spec(d, NAME, user=user, prefix=prefix)


def _logos(d):
    try:
        import ipykernel
    except ImportError:
        return
    res = os.path.join(os.path.dirname(ipykernel.__file__), "resources")
    for name in ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg"):
        if os.path.exists(os.path.join(res, name)):
            shutil.copy(os.path.join(res, name), d)
