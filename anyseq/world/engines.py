"""The external engines AnyWorld renders with, found once, with the install command on failure.

AnyGPT's AnyInstruct rendered its media with DALL-E 3, Azure TTS and MusicGen (paper,
section 4.2); AnyWorld uses engines that run offline on a CPU: espeak-ng (speech),
FluidSynth with a General MIDI soundfont (music), Noto Color Emoji (images).
`make setup` installs all of them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),  # Debian fluid-soundfont-gm
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),  # Debian timgm6mb-soundfont
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
)
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")  # Debian fonts-noto-color-emoji


class EngineMissing(RuntimeError):
    """An engine is not installed; the message gives the command that installs it."""


def _install_hint(package: str) -> str:
    return f"install it with `sudo apt-get install -y {package}` (or run `make setup`)"


def executable(name: str, package: str) -> str:
    """The path of the program `name`, or EngineMissing naming the apt package."""
    path = shutil.which(name)
    if path is None:
        raise EngineMissing(f"{name} not found on PATH; {_install_hint(package)}")
    return path


def fluidsynth() -> str:
    return executable("fluidsynth", "fluidsynth")


def soundfont() -> Path:
    """A General MIDI soundfont: $ANYSEQ_SOUNDFONT, else FluidR3_GM, else TimGM6mb."""
    override = os.environ.get("ANYSEQ_SOUNDFONT")
    candidates = (Path(override),) if override else SOUNDFONTS
    for path in candidates:
        if path.is_file():
            return path
    names = ", ".join(str(p) for p in candidates)
    raise EngineMissing(f"no General MIDI soundfont at {names}; {_install_hint('fluid-soundfont-gm')}")


def emoji_font() -> Path:
    if not EMOJI_FONT.is_file():
        raise EngineMissing(f"{EMOJI_FONT} not found; {_install_hint('fonts-noto-color-emoji')}")
    return EMOJI_FONT
