"""The `compute` params section: validation, device choice, and the command a stage starts its workers with."""
from pathlib import Path

import pytest

from rlhf import compute
from rlhf.compute import ComputeConfig, launch_command
from rlhf.config import ConfigError, from_dict


def test_defaults_are_one_process_on_the_best_device():
    cfg = from_dict(ComputeConfig, {}, prefix="compute")
    assert cfg.processes == 1 and not cfg.launches("ppo") and cfg.processes_for("ppo") == 1


@pytest.mark.parametrize("bad, match", [({"processes": 0}, "compute.processes"),
                                         ({"device": "tpu"}, "compute.device"),
                                         ({"mixed_precision": "fp8"}, "compute.mixed_precision"),
                                         ({"stages": ["prepare"]}, "compute.stages.*'prepare'")])
def test_bad_values_name_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(ComputeConfig, bad, prefix="compute")


def test_an_unquoted_no_read_as_false_is_no():
    # `dvc exp run -S ...` rewrites params.yaml with a YAML 1.1 writer: 'no' comes back as false
    assert from_dict(ComputeConfig, {"mixed_precision": False}, prefix="compute").mixed_precision == "no"
    with pytest.raises(ConfigError, match="compute.mixed_precision"):
        from_dict(ComputeConfig, {"mixed_precision": True}, prefix="compute")


def test_only_listed_training_stages_launch_workers():
    cfg = from_dict(ComputeConfig, {"processes": 2, "stages": ["ppo"]}, prefix="compute")
    assert cfg.launches("ppo") and not cfg.launches("train_reward_model") and not cfg.launches("evaluate_samples")
    assert cfg.processes_for("train_reward_model") == 1


def test_cpu_workers_start_with_torchrun_over_gloo(monkeypatch):
    monkeypatch.setattr(compute, "resolve_device", lambda device="auto": "cpu")
    cmd, env = launch_command(ComputeConfig(processes=2, main_process_port=29999), "ppo", ["tasks.ppo"],
                              root=Path("."))
    assert Path(cmd[0]).name == "torchrun" and cmd[cmd.index("--nproc_per_node") + 1] == "2"
    assert cmd[-2:] == ["-m", "tasks.ppo"] and "29999" in cmd
    assert env["ACCELERATE_USE_CPU"] == "1" and env[compute.LAUNCHED_ENV] == "1"
    assert env["OMP_NUM_THREADS"] == str(max(1, (compute.os.cpu_count() or 1) // 2))


def test_gpu_workers_start_with_accelerate_launch(monkeypatch):
    monkeypatch.setattr(compute, "resolve_device", lambda device="auto": "cuda")
    monkeypatch.setattr(compute, "check_mixed_precision", lambda mp, device: None)
    cmd, env = launch_command(ComputeConfig(processes=4, mixed_precision="bf16"), "train_reward_model",
                              ["tasks.train_reward_model"], root=Path("."))
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in cmd
    assert cmd[cmd.index("--num_processes") + 1] == "4" and cmd[cmd.index("--mixed_precision") + 1] == "bf16"
    assert "ACCELERATE_USE_CPU" not in env


def test_an_accelerate_config_file_is_passed_through_and_must_exist(tmp_path):
    (tmp_path / "zero2.yaml").write_text("distributed_type: DEEPSPEED\nnum_processes: 8\n")
    cmd, _ = launch_command(ComputeConfig(accelerate_config="zero2.yaml"), "ppo", ["tasks.ppo"], root=tmp_path)
    assert cmd[cmd.index("--config_file") + 1] == str(tmp_path / "zero2.yaml")
    assert ComputeConfig(accelerate_config="zero2.yaml").launches("ppo")
    with pytest.raises(ConfigError, match="missing.yaml.*does not exist"):
        launch_command(ComputeConfig(accelerate_config="missing.yaml"), "ppo", ["tasks.ppo"], root=tmp_path)


def test_stage_threads_win_over_the_share_of_cores():
    assert compute.worker_threads(ComputeConfig(processes=2), "ppo", stage_threads=3) == 3
    assert compute.worker_threads(ComputeConfig(processes=1), "ppo") == 0


def test_one_cpu_process_trains_without_an_accelerator(monkeypatch):
    monkeypatch.setattr(compute, "resolve_device", lambda device="auto": "cpu")
    monkeypatch.delenv(compute.LAUNCHED_ENV, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert compute.stage_accelerator(ComputeConfig(), "ppo") is None  # the plain path: today's numbers


@pytest.mark.parametrize("cudnn", [False, True])
def test_prepare_device_sets_cudnn_attention_on_cuda_only(monkeypatch, cudnn):
    import torch

    before = torch.backends.cuda.cudnn_sdp_enabled()
    monkeypatch.setattr(compute, "check_mixed_precision", lambda mp, device: None)
    try:
        monkeypatch.setattr(compute, "resolve_device", lambda device="auto": "cpu")
        torch.backends.cuda.enable_cudnn_sdp(True)
        assert compute.prepare_device(ComputeConfig(cudnn_attention=cudnn)) == "cpu"
        assert torch.backends.cuda.cudnn_sdp_enabled()  # the CPU leaves torch's setting alone
        monkeypatch.setattr(compute, "resolve_device", lambda device="auto": "cuda")
        assert compute.prepare_device(ComputeConfig(mixed_precision="bf16", cudnn_attention=cudnn)) == "cuda"
        assert torch.backends.cuda.cudnn_sdp_enabled() is cudnn
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_cudnn_attention_must_be_a_boolean():
    with pytest.raises(ConfigError, match="compute.cudnn_attention"):
        from_dict(ComputeConfig, {"cudnn_attention": "yes please"}, prefix="compute")
