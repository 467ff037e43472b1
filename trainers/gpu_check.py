"""The GPU check's torch items, in order: devices, measured peaks, attention backends, Triton kernels, training.

    items = torch_items(quick=True)      # list[CheckItem]; on a machine without CUDA the GPU items are skipped

No Ray here: `archscale.search.gpu_check` adds the memory-estimate and Ray items and runs the
command (`archscale check gpu`). Each item (or group) runs `guarded`: an exception becomes a failed
item carrying the error's last line, so one broken path never hides the others.
"""

from __future__ import annotations

import torch

from archscale.trainers.gpu_check_attention import attention_items
from archscale.trainers.gpu_check_device import devices_item, peaks_item, versions
from archscale.trainers.gpu_check_kernels import kernel_items
from archscale.trainers.gpu_check_report import CheckItem, guarded
from archscale.trainers.gpu_check_training import training_items
from archscale.trainers.metrics import git_revision


def check_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def environment(quick: bool) -> dict:
    """Where the torch items ran: versions, git revision, the device, --quick."""
    device = check_device()
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else None
    return {**versions(), "git_revision": git_revision(), "device": device.type, "device_name": name, "quick": quick}


def torch_items(quick: bool) -> list[CheckItem]:
    device = check_device()
    items = guarded("devices", lambda: [devices_item()])
    peak_flops = copy_bandwidth = None
    try:
        peaks, peak_flops, copy_bandwidth = peaks_item(device, quick)
        items.append(peaks)
    except Exception as e:
        items.append(CheckItem.failed("peaks", e))
    items += guarded("attention", lambda: attention_items(device, quick))
    items += guarded("kernels", lambda: kernel_items(device, quick, copy_bandwidth))
    items += training_items(device, quick, peak_flops)  # each guarded inside
    return items
