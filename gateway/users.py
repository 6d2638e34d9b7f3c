"""Users of the gateway: roles, bound accounts and secrets stored as salted, slow hashes.

Theory of operation
-------------------
The user file is JSON (msgspec), written atomically with mode 0600
(``engine.durable.files.write_atomically``: temporary file, fsync, rename, directory fsync).
A secret - a password or a generated API key, the gateway does not tell them apart - is never
stored: only
``scrypt$<log2 n>$<r>$<p>$<salt>$<digest>`` (or ``pbkdf2-sha256$<iterations>$<salt>$<digest>``,
salt and digest in base64).  Verification recomputes the hash with the stored parameters and
compares with :func:`hmac.compare_digest`.  An unknown user costs the same hash as a known one
(against a dummy), so timing does not reveal which names exist.

The hash is deliberately slow (tens of milliseconds): the server runs it in a worker thread
and caps how many run at once (``limits.LOGONS_IN_FLIGHT_MAX``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

import msgspec

from engine.core import limits
from engine.durable.files import write_atomically
from gateway.protocol import Role

USER_FILE_VERSION = 1
SCRYPT_LOG2_N = 15
"""Default scrypt cost: n = 2^15, r = 8 (32 MiB, ~0.1 s on this class of machine)."""
SCRYPT_R = 8
SCRYPT_P = 1
PBKDF2_ITERATIONS = 600_000
SALT_BYTES = 16
DIGEST_BYTES = 32
_SCRYPT_LOG2_N_MAX = 20


class UserFileError(ValueError):
    """A user file or user record that cannot be used; the message says why."""


class User(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One user: a role, the accounts a trader may act for, and the hash of its secret."""

    name: str
    role: Role
    secret_hash: str
    accounts: list[int] = []
    disabled: bool = False


class UserFile(msgspec.Struct, forbid_unknown_fields=True):
    version: int = USER_FILE_VERSION
    users: list[User] = []


# ------------------------------------------------------------------------------------------
# Hashing
# ------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(secret: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        secret, salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + (1 << 20), dklen=DIGEST_BYTES
    )


def hash_secret(secret: str, *, log2_n: int = SCRYPT_LOG2_N, r: int = SCRYPT_R) -> str:
    """Salted scrypt hash of ``secret`` in the user file's text form.

    Parameters
    ----------
    secret : str
        Password or API key.
    log2_n, r : int
        scrypt cost; the defaults are for production, tests may lower ``log2_n``.
    """
    if not 1 <= log2_n <= _SCRYPT_LOG2_N_MAX:
        raise ValueError(f"log2_n must be 1 … {_SCRYPT_LOG2_N_MAX}")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(secret.encode(), salt, log2_n, r, SCRYPT_P)
    return f"scrypt${log2_n}${r}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def hash_secret_pbkdf2(secret: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Salted PBKDF2-HMAC-SHA256 hash (for deployments that cannot spare scrypt's memory)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations, DIGEST_BYTES)
    return f"pbkdf2-sha256${iterations}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, encoded: str) -> bool:
    """True when ``secret`` matches the stored hash (constant-time comparison).

    A malformed stored hash never matches.
    """
    try:
        expected, computed = _recompute(secret.encode(), encoded)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, computed)


def _recompute(secret: bytes, encoded: str) -> tuple[bytes, bytes]:
    parts = encoded.split("$")
    if parts[0] == "scrypt" and len(parts) == 6:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        if not (1 <= log2_n <= _SCRYPT_LOG2_N_MAX and 1 <= r <= 32 and 1 <= p <= 16):
            raise ValueError("scrypt parameters out of range")
        salt, expected = base64.b64decode(parts[4]), base64.b64decode(parts[5])
        return expected, _scrypt(secret, salt, log2_n, r, p)
    if parts[0] == "pbkdf2-sha256" and len(parts) == 4:
        iterations = int(parts[1])
        if not 1 <= iterations <= 10_000_000:
            raise ValueError("pbkdf2 iterations out of range")
        salt, expected = base64.b64decode(parts[2]), base64.b64decode(parts[3])
        return expected, hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, len(expected))
    raise ValueError("unknown hash format")


def generate_api_key() -> str:
    """A new random API key (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


# ------------------------------------------------------------------------------------------
# The directory
# ------------------------------------------------------------------------------------------


def check_user(user: User) -> User:
    """Raise UserFileError unless ``user`` is well formed; returns it."""
    if not 1 <= len(user.name) <= limits.USER_NAME_CHARS_MAX or not user.name.isprintable():
        raise UserFileError(
            f"user name {user.name!r}: 1 … {limits.USER_NAME_CHARS_MAX} printable characters"
        )
    if user.role is Role.TRADER:
        if not 1 <= len(user.accounts) <= limits.ACCOUNTS_PER_USER_MAX:
            raise UserFileError(
                f"trader {user.name!r} needs 1 … {limits.ACCOUNTS_PER_USER_MAX} accounts"
            )
    elif user.accounts:
        raise UserFileError(
            f"{user.role.value} {user.name!r} may not be bound to accounts (only traders trade)"
        )
    if any(not 0 <= a < limits.ACCOUNTS_MAX for a in user.accounts):
        raise UserFileError(f"user {user.name!r}: accounts are 0 … {limits.ACCOUNTS_MAX - 1}")
    if len(set(user.accounts)) != len(user.accounts):
        raise UserFileError(f"user {user.name!r}: an account is listed twice")
    return user


class UserDirectory:
    """The users the gateway knows, by name.

    Parameters
    ----------
    users : iterable of User
        Checked with :func:`check_user`; names must be unique.
    """

    def __init__(self, users=()) -> None:
        self._users: dict[str, User] = {}
        for user in users:
            self.put(user, replace=False)
        self._dummy_hash: str | None = None

    def put(self, user: User, replace: bool = True) -> None:
        """Add (or with ``replace`` overwrite) a user."""
        check_user(user)
        if not replace and user.name in self._users:
            raise UserFileError(f"user {user.name!r} exists")
        self._users[user.name] = user

    def remove(self, name: str) -> None:
        if self._users.pop(name, None) is None:
            raise UserFileError(f"no user {name!r}")

    def get(self, name: str) -> User | None:
        return self._users.get(name)

    def __iter__(self):
        return iter(sorted(self._users.values(), key=lambda u: u.name))

    def __len__(self) -> int:
        return len(self._users)

    def authenticate(self, name: str, secret: str) -> User | None:
        """The user if ``secret`` is its secret and it is enabled, else None.

        Costs one slow hash whether or not the user exists.
        """
        user = self._users.get(name)
        if user is None:
            if self._dummy_hash is None:
                self._dummy_hash = hash_secret(generate_api_key())
            verify_secret(secret, self._dummy_hash)
            return None
        ok = verify_secret(secret, user.secret_hash)
        return user if ok and not user.disabled else None

    # -- files ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> UserDirectory:
        """Read a user file (a missing file is an empty directory)."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            data = msgspec.json.decode(path.read_bytes(), type=UserFile)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:  # bad UTF-8
            raise UserFileError(f"{path}: {exc}") from None
        except OSError as exc:
            raise UserFileError(f"cannot read {path}: {exc.strerror}") from None
        if data.version != USER_FILE_VERSION:
            raise UserFileError(f"{path}: unsupported user file version {data.version}")
        return cls(data.users)

    def save(self, path: str | Path) -> None:
        """Write the user file atomically, readable by its owner only."""
        path = Path(path)
        body = msgspec.json.format(msgspec.json.encode(UserFile(users=list(self))), indent=2)
        write_atomically(path, body + b"\n", mode=0o600)
