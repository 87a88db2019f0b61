"""Runs `videohooks web` and a command against it inside a network namespace that has only
loopback, so that nothing the command makes the service do can reach beyond this machine.

    unshare -rn python -m tests.support.isolated FOLDER -- COMMAND... {url} ...

`{url}` in the command is replaced by the service's URL. Exits with the command's status; the
service's log is FOLDER/web.log. The namespace starts with loopback down: it is brought up here.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import subprocess
import sys
from pathlib import Path

from tests.support.fuzzing import fuzz_env, videohooks
from tests.support.servers import free_port

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def main(folder: Path, command: list[str]) -> int:
    loopback_up()
    # Every rule the schema cannot state is lifted by configuration: any URL the grammar allows
    # is accepted without resolving it (only `web` runs: no worker sends anything).
    env = fuzz_env(folder, allow_private_urls="true")
    with videohooks("web", env, folder / "web.log", free_port()) as url:
        return subprocess.run([part.replace("{url}", url) for part in command]).returncode


if __name__ == "__main__":
    separator = sys.argv.index("--")
    sys.exit(main(Path(sys.argv[1]), sys.argv[separator + 1 :]))
