"""The scripted loopback server of the client tests, for the doctor's odd-answer tests."""

from tests.athena.conftest import scripted as scripted
