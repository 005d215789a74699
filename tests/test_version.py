"""The version a file records, compared with this aekit's."""

import aekit
from aekit.version import newer


def test_only_a_later_release_is_newer():
    assert newer("99.0.0") == (f"written by aekit 99.0.0, newer than this aekit {aekit.__version__}: upgrade aekit "
                               "(pip install -U aekit)")
    assert newer("99.0.0.dev1") and newer(aekit.__version__ + ".1")
    for same_or_older_or_unreadable in (aekit.__version__, "0.0.9", "0.1", None, 3, "", "dev"):
        assert newer(same_or_older_or_unreadable) is None
