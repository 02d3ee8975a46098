"""A real ``nst-prefer`` server for the tests: its files (a small random-weight pastiche
checkpoint, a content photo) and the process, started as a user starts it."""

import os
import socket
import subprocess
import time
import urllib.request

import numpy as np

from conftest import console
from tests.pastiche_helpers import random_pastiche


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_session_files(folder):
    """``{"checkpoint", "content", "folder"}``: a 4-style pastiche checkpoint and a 40x48 photo."""
    from magenta_compat.checkpoint import write_checkpoint
    from nst_tf import images

    checkpoint = write_checkpoint(random_pastiche(4, alpha=0.25, seed=1),
                                  str(folder / "model.ckpt"))
    content = str(folder / "photo.png")
    y, x = np.mgrid[0:40, 0:48] / 40.0
    images.save_image(content, np.stack([x / 1.2, y, (x + y) / 2.2], -1).astype(np.float32))
    return {"checkpoint": checkpoint, "content": content, "folder": folder}


class Server:
    """``nst-prefer --db=db`` serving ``files`` on a free port (started when built)."""

    def __init__(self, files, db, question):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen(
            console("nst-prefer") + [
                f"--content={files['content']}", f"--model={files['checkpoint']}",
                f"--db={db}", f"--port={self.port}", "--size=48",
                *([f"--question={question}"] if question else [])], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("nst-prefer exited: " + self.process.stdout.read())
            try:
                urllib.request.urlopen(self.url + "/api/state", timeout=30)
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("nst-prefer did not start within 90 s")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=20)
