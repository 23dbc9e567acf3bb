"""The benchmark's measurements on their own."""

from types import SimpleNamespace

import torch


def test_device_busy_time_counts_each_kernel_once(load_script):
    measure = load_script("measure")
    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    events = [  # an optimizer-step range, a convolution operator, the two kernels it launched
        SimpleNamespace(device_type=cuda, is_user_annotation=True, self_device_time_total=300.0),
        SimpleNamespace(device_type=cpu, is_user_annotation=False, self_device_time_total=300.0),
        SimpleNamespace(device_type=cuda, is_user_annotation=False, self_device_time_total=200.0),
        SimpleNamespace(device_type=cuda, is_user_annotation=False, self_device_time_total=100.0),
    ]
    assert measure.device_busy_seconds(events) == 300.0 / 1e6
