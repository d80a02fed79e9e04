"""Reading a new password for ``camvault users passwd``: twice from the terminal (not
echoed), or the first line of stdin when stdin is not a terminal (scripts)."""

from __future__ import annotations

import getpass
import sys

from camvault.errors import InputError


def read_password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            raise InputError("no password on stdin")
        return password
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise InputError("the passwords differ")
    return first
