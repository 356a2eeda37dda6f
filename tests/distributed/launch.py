"""Start a test worker module under torchrun with N CPU processes (gloo), as a stage starts its workers."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def torchrun(n: int, module: str, *args: str, port: int, check: bool = True) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node n -m module args`` on 127.0.0.1:port; fails the test on a non-zero exit
    unless ``check`` is False."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", str(n),
                           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", module, *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"torchrun exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc
