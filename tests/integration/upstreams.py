"""The IMAP servers the tests run against, and how to make sure Cyrus is there."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bridge.demo.cyrus import CYRUS_ROOT, Cyrus, installed
from bridge.demo.dovecot import Dovecot

Upstream = Dovecot | Cyrus
# The ``upstream`` fixture's variants (tests/conftest.py): Dovecot with every capability,
# Dovecot hiding CONDSTORE and QRESYNC, and Cyrus.
DOVECOT_VARIANTS = {"full": (), "no-condstore": ("CONDSTORE", "QRESYNC")}
CYRUS = "cyrus"
# For tests of IMAP behaviour: they run against every server.
every_upstream = pytest.mark.upstreams(*DOVECOT_VARIANTS, CYRUS)
# For a test of a Dovecot feature (doveadm, its Maildir, its config) in such a module.
dovecot_only = pytest.mark.upstreams(*DOVECOT_VARIANTS)
INSTALL_CYRUS = Path(__file__).resolve().parents[2] / ".ci" / "install-cyrus"


def require_cyrus() -> None:
    """Unpack Cyrus if it is not yet (as .ci/run does): a missing server is a broken setup,
    not a test to pass over."""
    if installed():
        return
    if os.geteuid() != 0:
        pytest.fail(f"Cyrus is not unpacked in {CYRUS_ROOT} (run: sudo bash {INSTALL_CYRUS})")
    done = subprocess.run(["bash", str(INSTALL_CYRUS)], capture_output=True, timeout=600)
    if done.returncode != 0 or not installed():
        pytest.fail(f"{INSTALL_CYRUS} failed: {done.stderr.decode(errors='replace')[-2000:]}")
