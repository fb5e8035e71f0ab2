"""Read an account's password or OAuth2 token from where the config says it is.

The secret lives in memory only for the login; errors say where it should have come from,
never what it is.
"""

from __future__ import annotations

import os
import subprocess

from .config import PasswordSource


class CredentialError(RuntimeError):
    """The secret could not be read; str() says from where and why, without the secret."""


def read_password(source: PasswordSource, timeout: float = 30.0) -> str:
    if source.env is not None:
        value = os.environ.get(source.env)
        if not value:
            raise CredentialError(f"password_env: environment variable {source.env} is not set")
        return value
    if source.file is not None:
        try:
            lines = source.file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CredentialError(
                f"password_file: cannot read {source.file}: {exc.strerror}"
            ) from None
        if not lines or not lines[0]:
            raise CredentialError(f"password_file: {source.file} is empty")
        return lines[0]
    if source.command is not None:
        return run_secret_command(source.command, "password_command", timeout)
    raise CredentialError("no password source configured")


def run_secret_command(command: str, key: str, timeout: float = 30.0) -> str:
    """The first line of a command's standard output (its stderr is not shown: it may leak)."""
    try:
        result = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise CredentialError(f"{key}: command did not finish in {timeout:.0f} s") from None
    if result.returncode != 0:
        raise CredentialError(f"{key}: command exited with status {result.returncode}")
    value = result.stdout.splitlines()[0].strip() if result.stdout.strip() else ""
    if not value:
        raise CredentialError(f"{key}: command printed nothing")
    return value
