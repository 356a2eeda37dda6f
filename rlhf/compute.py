"""Where and how the training stages run: device, processes, mixed precision (``params.yaml`` ``compute``).

The stages train through :class:`accelerate.Accelerator` (DESIGN.md §7): the same code on one CPU
process, N CPU processes over gloo, N GPUs, or several machines described by an ``accelerate``
config file (DeepSpeed ZeRO, FSDP, multi-node are accelerate's own files; this module only
points at one). ``processes: 1`` with ``device: auto`` on a machine without a GPU is the
single-process CPU run the pipeline has always been.

This module holds the config, the device / precision checks and the command a stage uses to
start its own worker processes; it imports ``accelerate`` and ``torch.distributed`` lazily.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rlhf.config import ConfigError, param

TRAINING_STAGES = ("base", "train_reward_model", "ppo")
# Set in every worker a stage starts for itself, so the worker does not start workers again.
LAUNCHED_ENV = "RLHF_LAUNCHED"
PRECISIONS = ("no", "bf16", "fp16")


@dataclass
class ComputeConfig:
    """``params.yaml`` section ``compute``: device, processes and precision of the training stages."""

    device: str = param("auto", "'auto' (CUDA when present, else Apple MPS, else CPU), 'cpu', 'cuda' or 'mps'",
                        choices=("auto", "cpu", "cuda", "mps"))
    processes: int = param(1, "data-parallel processes per training stage (1: a single process); on "
                           "CPU they share the cores over gloo, on CUDA one process per GPU", min=1, max=1024)
    stages: list[str] = param(None, "the stages that start `processes` workers (the others run in one process on "
                              "the device)", factory=lambda: list(TRAINING_STAGES))
    # str | bool: YAML 1.1 writers (`dvc exp run -S`, PyYAML) turn an unquoted `no` into false
    mixed_precision: str | bool = param("no", "'no', 'bf16' or 'fp16' autocast in training; refused on hardware "
                                        "that cannot do it (bf16 needs a CUDA GPU with bf16 support or a CPU, fp16 "
                                        "a GPU)")
    gradient_accumulation_steps: int = param(1, "micro-batches per optimiser step; the global batch of a step stays "
                                             "the stage's batch setting, split into this many forward/backward "
                                             "passes (less memory, same result up to floating-point noise)", min=1)
    accelerate_config: str = param("", "an `accelerate config` YAML file (relative to the project root) for "
                                   "DeepSpeed ZeRO, FSDP or several machines; '' = none. When set, workers are "
                                   "started by `accelerate launch --config_file` and its num_processes wins")
    main_process_port: int = param(29500, "TCP port of the rendezvous between the workers (127.0.0.1 on one "
                                   "machine)", min=1024, max=65535)
    cudnn_attention: bool = param(False, "CUDA: let attention use cuDNN's kernel (bf16/fp16). Off: it builds a "
                                  "plan for every new sequence shape and the stages' batches vary in length "
                                  "(an H200, bf16: reward-model steps 3.3x slower with it); torch's flash / "
                                  "memory-efficient kernels run instead")

    def validate(self, prefix: str = "compute") -> None:
        if self.mixed_precision is False:
            self.mixed_precision = "no"
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(f"{prefix}.mixed_precision: got {self.mixed_precision!r}; expected one of "
                              f"{', '.join(map(repr, PRECISIONS))}")
        unknown = sorted(set(self.stages) - set(TRAINING_STAGES))
        if unknown:
            raise ConfigError(f"{prefix}.stages: got {unknown[0]!r}; expected stages among "
                              f"{', '.join(TRAINING_STAGES)}")

    def processes_for(self, stage: str) -> int:
        """Worker processes ``stage`` runs with (1 for stages not in ``stages``)."""
        return self.processes if stage in self.stages else 1

    def launches(self, stage: str) -> bool:
        """Whether ``stage`` starts its own workers (more than one process, or an accelerate config)."""
        return stage in self.stages and (self.processes > 1 or bool(self.accelerate_config))


def resolve_device(device: str = "auto") -> str:
    """``'cpu'``, ``'cuda'`` or ``'mps'`` for a ``compute.device`` value; raises ConfigError when absent."""
    import torch

    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("compute.device: got 'cuda' but torch sees no CUDA device on this machine "
                          f"(torch {torch.__version__}); use 'auto' or 'cpu'")
    if device == "mps" and not has_mps:
        raise ConfigError("compute.device: got 'mps' but Apple's MPS backend is not available here; "
                          "use 'auto' or 'cpu'")
    return device


def check_mixed_precision(mixed_precision: str, device: str) -> None:
    """Refuse a precision the resolved ``device`` cannot run (ConfigError naming both)."""
    import torch

    if mixed_precision == "no":
        return
    if mixed_precision == "fp16" and device == "cpu":
        raise ConfigError("compute.mixed_precision: 'fp16' needs a GPU (CPU autocast runs bf16 only); "
                          "use 'bf16' or 'no' on this machine")
    if mixed_precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"compute.mixed_precision: 'bf16' is not supported by {torch.cuda.get_device_name()}; "
                          "use 'fp16' or 'no'")
    if mixed_precision == "bf16" and device == "mps":
        raise ConfigError("compute.mixed_precision: 'bf16' on MPS is not supported by accelerate here; use 'fp16' "
                          "or 'no'")


def prepare_device(cfg: ComputeConfig) -> str:
    """The resolved device of ``cfg``, its precision checked, its attention kernels chosen.

    On CUDA, :attr:`ComputeConfig.cudnn_attention` switches torch's cuDNN attention backend for this
    process (``torch.backends.cuda.enable_cudnn_sdp``); measured on an H200 with bf16, 2026-12-04, a 100M
    GPT-2: reward-model steps 0.42 s with it against 0.13 s without, base steps 0.18 against 0.058 s (cuDNN
    builds a plan for each new shape; batches here vary in length). fp32 attention never uses cuDNN.
    """
    import torch

    device = resolve_device(cfg.device)
    check_mixed_precision(cfg.mixed_precision, device)
    if device == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(cfg.cudnn_attention)
    return device


def make_accelerator(cfg: ComputeConfig, *, stage: str):
    """The :class:`accelerate.Accelerator` of a training stage (one per process).

    Inside workers a stage started for itself (``torchrun`` / ``accelerate launch``) it joins their
    process group; otherwise it is a one-process run on the resolved device (:func:`prepare_device`).
    """
    from accelerate import Accelerator

    device = prepare_device(cfg)
    # gradient accumulation is the trainers' own (``micro_batches``): they weight each micro-batch by its
    # share of the step exactly, where accelerate's would divide every loss by the step count
    return Accelerator(cpu=device == "cpu", mixed_precision=cfg.mixed_precision)


def stage_accelerator(cfg: ComputeConfig, stage: str):
    """The Accelerator a training stage trains with, or None for the plain one-process CPU run.

    None (the trainers' own single-process path, the numbers the pipeline has always produced)
    unless this is one of several workers, the device is not the CPU, or mixed precision is on.
    """
    device = resolve_device(cfg.device)
    check_mixed_precision(cfg.mixed_precision, device)
    if in_launched_worker() or device != "cpu" or cfg.mixed_precision != "no":
        return make_accelerator(cfg, stage=stage)
    return None


def worker_threads(cfg: ComputeConfig, stage: str, stage_threads: int = 0) -> int:
    """torch threads of each worker: the stage's own ``threads`` setting when given, else the cores shared
    out among the processes (0: torch's default, for one process)."""
    if stage_threads:
        return stage_threads
    n = cfg.processes_for(stage)
    return max(1, (os.cpu_count() or 1) // n) if n > 1 else 0


def launch_command(cfg: ComputeConfig, stage: str, module_args: Sequence[str], *, root: Path,
                   stage_threads: int = 0) -> tuple[list[str], dict]:
    """The command and extra environment that start ``stage``'s workers, each running ``python -m <module_args>``.

    - an ``accelerate_config`` file: ``accelerate launch --config_file FILE -m ...`` (its
      ``num_processes``, machines, DeepSpeed/FSDP settings win);
    - CUDA: ``accelerate launch --multi_gpu --num_processes N --mixed_precision MP -m ...``;
    - CPU: ``torchrun --nproc_per_node N -m ...`` with ``ACCELERATE_USE_CPU=1`` (gloo). (Measured here:
      ``accelerate launch --cpu --num_processes 2`` starts ONE process.)
    """
    bin_dir = Path(sys.executable).parent
    env = {LAUNCHED_ENV: "1", "OMP_NUM_THREADS": str(worker_threads(cfg, stage, stage_threads) or 1)}
    if cfg.accelerate_config:
        path = Path(cfg.accelerate_config)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise ConfigError(f"compute.accelerate_config: {str(path)!r} does not exist; expected a YAML file "
                              "written by `accelerate config`")
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path), "-m", *module_args]
        return cmd, env
    device = resolve_device(cfg.device)
    check_mixed_precision(cfg.mixed_precision, device)
    n = cfg.processes_for(stage)
    if device == "cuda":
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n),
               "--mixed_precision", cfg.mixed_precision, "--main_process_port", str(cfg.main_process_port),
               "-m", *module_args]
        return cmd, env
    torchrun = shutil.which("torchrun", path=str(bin_dir)) or "torchrun"
    env["ACCELERATE_USE_CPU"] = "1"
    if cfg.mixed_precision != "no":
        env["ACCELERATE_MIXED_PRECISION"] = cfg.mixed_precision
    cmd = [torchrun, "--nproc_per_node", str(n), "--master_addr", "127.0.0.1", "--master_port",
           str(cfg.main_process_port), "-m", *module_args]
    return cmd, env


def in_launched_worker() -> bool:
    """True inside a worker started by :func:`launch_command` (or any torchrun / accelerate launch)."""
    return os.environ.get(LAUNCHED_ENV) == "1" or "LOCAL_RANK" in os.environ


__all__ = ["ComputeConfig", "TRAINING_STAGES", "check_mixed_precision", "in_launched_worker", "launch_command",
           "make_accelerator", "resolve_device", "stage_accelerator", "worker_threads"]
