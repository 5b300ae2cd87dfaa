"""A JACK dummy server (a clocked virtual sound device) that tests can stop and start."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

DUMMY_DEVICE = ("-d", "dummy", "-r", "48000", "-p", "960")


class JackServer:
    """A `jackd -d dummy` at 48 kHz / 960-frame periods that a test can stop and
    start again, as if the sound device were unplugged and plugged back."""

    def __init__(self) -> None:
        self.name = f"telecart-test-{uuid.uuid4().hex[:6]}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [*("jackd", "--no-realtime", "-n", self.name), *DUMMY_DEVICE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, JACK_NO_AUDIO_RESERVATION="1"),
        )

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def ports(self) -> list[str]:
        """Port names, or [] while the server is not up."""
        result = subprocess.run(
            ["jack_lsp", "-s", self.name], capture_output=True, text=True, timeout=5
        )
        return result.stdout.split() if result.returncode == 0 else []

    def loop_back(self, timeout_s: float = 10.0) -> None:
        """Patch the PortAudio client's output port into its input port (a cable
        from the speaker jack to the microphone jack)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ports = self.ports()
            outs = [p for p in ports if p.startswith("PortAudio") and ":out_" in p]
            ins = [p for p in ports if p.startswith("PortAudio") and ":in_" in p]
            if outs and ins:
                subprocess.run(["jack_connect", "-s", self.name, outs[0], ins[0]], check=True)
                return
            time.sleep(0.1)
        raise TimeoutError(f"no PortAudio ports on {self.name}: {self.ports()}")
