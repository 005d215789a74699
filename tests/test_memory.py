"""What memory is available (aekit.memory): a container's limit counts, not only the machine's memory."""

import pytest

from aekit import memory


@pytest.mark.parametrize("files, room", [
    ({"memory.max": "1073741824\n", "memory.current": "268435456\n"}, 3 << 28),  # cgroup v2: 1 GiB, 256 MiB used
    ({"memory/memory.limit_in_bytes": "536870912\n", "memory/memory.usage_in_bytes": "0\n"}, 1 << 29),  # v1
    ({"memory.max": "max\n", "memory.current": "5\n"}, None),  # no limit
    ({"memory/memory.limit_in_bytes": "9223372036854771712\n", "memory/memory.usage_in_bytes": "5\n"}, None),
    ({}, None),  # no control groups (macOS, Windows)
])
def test_a_containers_memory_limit_bounds_what_is_available(tmp_path, monkeypatch, files, room):
    """Inside a memory-limited container the machine's MemAvailable passed every check, and the process was killed."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(memory, "CGROUP", str(tmp_path))
    monkeypatch.setattr(memory, "_meminfo", lambda key, path="": 64 << 30 if key == "MemAvailable" else None)
    assert memory._cgroup_room() == room
    assert memory.available() == (64 << 30 if room is None else room)
