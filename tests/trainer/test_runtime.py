"""The process's compute setup (runtime.py): threads and loader workers held to the CPUs the process may use."""
import os

import torch

from protopnet_trainer import runtime


def test_threads_beyond_the_usable_cpus_are_held_to_them_with_a_line_saying_so(monkeypatch, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    before = torch.get_num_threads()
    try:
        runtime.use_threads(256)
        assert torch.get_num_threads() == 2
        runtime.use_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr()
    assert "--threads 256 is more than the 2 CPUs this process may use: using 2" in out.out + out.err
    assert runtime.at_most_usable(32, "--workers") == 2 and runtime.at_most_usable(2, "--workers") == 2
    assert runtime.at_most_usable(0, "--workers") == 0
