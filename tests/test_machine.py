"""What `auto` is decided from (a CUDA GPU visible, native bf16 on the CPU): torch's own answers, remembered so that
a plan in a new process needs no torch, asked again when what they depend on changes, corrected when stale."""

from __future__ import annotations

import json
import subprocess
import sys

from ablate.study import machine

ASK = ("import json, sys; from ablate.study import machine; "
       "print(json.dumps([machine.cuda_available(), machine.cpu_has_native_bf16(), 'torch' in sys.modules]))")


def answers_in_a_new_process(**environment: str) -> list[bool]:
    """[cuda, native bf16, whether torch was imported] as a new process without torch loaded sees them."""
    import os

    done = subprocess.run([sys.executable, "-c", ASK], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **environment})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_new_process_asks_torch_once_then_remembers_until_the_visible_devices_change() -> None:
    import torch

    truth = [torch.cuda.is_available(), machine.ask_torch()["native_bf16"]]
    assert answers_in_a_new_process() == [*truth, True]  # nothing remembered: torch was asked
    assert answers_in_a_new_process() == [*truth, False]  # remembered: no torch imported
    assert answers_in_a_new_process(CUDA_VISIBLE_DEVICES="") == [False, truth[1], True]  # devices hidden: asked again
    assert answers_in_a_new_process(CUDA_VISIBLE_DEVICES="") == [False, truth[1], False]


def test_a_stale_remembered_answer_is_corrected_by_the_next_process_with_torch() -> None:
    import torch

    from ablate.store import cache

    wrong = {"cuda": not torch.cuda.is_available(), "native_bf16": machine.ask_torch()["native_bf16"]}
    cache.remember(machine.FACTS, machine.key(), wrong)
    assert answers_in_a_new_process()[0] == wrong["cuda"]  # a process without torch trusts what was remembered
    assert machine.cuda_available() == torch.cuda.is_available()  # this one has torch: it asks, and corrects the cache
    assert answers_in_a_new_process() == [torch.cuda.is_available(), wrong["native_bf16"], False]
