"""`anyseq chat`: a terminal any-to-any chat that keeps the conversation.

Type text to send it. Attach media to the next message with `/image PATH`,
`/speech PATH`, `/music PATH`; set the voice of spoken replies with `/voice PATH`
(AnyGPT's voice prompt); `/reply MODALITY` makes the next reply open with that
modality; `/clear`, `/save FILE.json`, `/load FILE.json`, `/help`, `/quit`. Each media reply is written to the output folder and its path printed. It reads
lines from a pipe as well as from a terminal, which is how its tests drive it; bad input
(a missing file, an unsupported format, an over-long message) prints a clear message
and the chat goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from anyseq.api import AnySeq, MediaOutput
from anyseq.conversation import Conversation, Media, Message, Part, Text
from anyseq.io import atomic_write_json
from anyseq.media import MediaError, load_audio

EXTENSIONS = {"image": ".png", "speech": ".wav", "music": ".wav"}
HELP = __doc__.split("\n\n")[1]


class ChatSession:
    """The state of one terminal chat: the conversation, pending attachments, the voice."""

    def __init__(
        self,
        model: AnySeq,
        out_dir: Path,
        console: Console,
        max_new_tokens: int = 512,
        seed: int | None = None,
    ) -> None:
        self.model = model
        self.out_dir = out_dir
        self.console = console
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.conversation = Conversation([], model.system)
        self.pending: list[Part] = []
        self.voice_path: Path | None = None
        self.respond_with: str | None = None
        self.replies = 0

    def handle(self, line: str) -> bool:
        """Process one input line; False ends the chat."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            self.send(line)
            return True
        command, _, argument = line.partition(" ")
        command, argument = command[1:].lower(), argument.strip()
        if command in ("quit", "exit"):
            return False
        handler = {
            "help": lambda _: self.console.print(HELP),
            "clear": self.clear,
            "save": self.save,
            "load": self.load,
            "voice": self.set_voice,
            "reply": self.set_reply,
            **{name: (lambda arg, name=name: self.attach(name, arg)) for name in EXTENSIONS},
        }.get(command)
        if handler is None:
            self.console.print(f"[red]unknown command /{command}[/red]; /help lists them")
        else:
            handler(argument)
        return True

    def attach(self, modality: str, argument: str) -> None:
        if modality not in self.model.tokenizers:
            self.console.print(
                f"[red]this model has no {modality} tokenizer[/red] (it has {self.model.modalities})"
            )
            return
        if not argument:
            self.console.print(f"[red]usage: /{modality} PATH[/red]")
            return
        try:
            codes = self.model.tokenizers[modality].encode(Path(argument).expanduser())
        except (MediaError, ValueError, OSError) as error:
            self.console.print(f"[red]cannot attach {argument}: {error}[/red]")
            return
        self.pending.append(Media(modality, codes=codes))
        self.console.print(f"attached {modality} {argument} ({codes.shape[-1]} frames)")

    def set_voice(self, argument: str) -> None:
        if not argument:
            self.voice_path = None
            self.console.print("voice prompt cleared")
            return
        try:
            load_audio(Path(argument).expanduser(), 16000, max_seconds=30.0)
        except MediaError as error:
            self.console.print(f"[red]cannot use {argument} as a voice: {error}[/red]")
            return
        self.voice_path = Path(argument).expanduser()
        self.console.print(f"spoken replies will use the voice of {argument}")

    def set_reply(self, argument: str) -> None:
        if argument not in self.model.tokenizers:
            self.console.print(f"[red]usage: /reply MODALITY[/red] with one of {self.model.modalities}")
            return
        self.respond_with = argument
        self.console.print(f"the next reply opens with {argument}")

    def clear(self, _: str = "") -> None:
        self.conversation = Conversation([], self.model.system)
        self.pending = []
        self.console.print("conversation cleared")

    def save(self, argument: str) -> None:
        if not argument:
            self.console.print("[red]usage: /save FILE.json[/red]")
            return
        atomic_write_json(Path(argument), self.conversation.to_dict())
        self.console.print(f"saved {len(self.conversation.messages)} messages to {argument}")

    def load(self, argument: str) -> None:
        try:
            self.conversation = Conversation.from_dict(json.loads(Path(argument).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            self.console.print(f"[red]cannot load {argument}: {error}[/red]")
            return
        self.console.print(f"loaded {len(self.conversation.messages)} messages from {argument}")

    def send(self, text: str) -> None:
        message = Message("user", [*self.pending, Text(text)])
        self.conversation.messages.append(message)
        reserve = min(self.max_new_tokens, self.model.context_length // 4)
        self.conversation, dropped = self.model.fit_to_context(self.conversation, reserve)
        if dropped:
            self.console.print(f"[yellow]dropped the {dropped} oldest messages to fit the context[/yellow]")
        try:
            reply = self.model.chat(
                self.conversation,
                voice=self.voice_path,
                respond_with=self.respond_with,
                max_new_tokens=self.max_new_tokens,
                seed=None if self.seed is None else self.seed + self.replies,
            )
        except (ValueError, MediaError) as error:
            self.conversation.messages.pop()
            self.console.print(f"[red]not sent: {error}[/red]")
            return
        self.pending, self.respond_with = [], None
        self.replies += 1
        self.conversation.messages.append(reply.to_message())
        if not reply.text and not reply.media:
            self.console.print(f"[yellow]the reply is empty (stopped by {reply.finish_reason})[/yellow]")
        for index, part in enumerate(reply.parts):
            if isinstance(part, MediaOutput):
                path = part.save(self.out_dir / f"reply{self.replies:03d}_{index}{EXTENSIONS[part.modality]}")
                self.console.print(f"[bold]AnyGPT[/bold] \\[{part.modality}] {escape(str(path))}")
            elif part.strip():
                self.console.print(f"[bold]AnyGPT[/bold] {escape(part.strip())}")


def run_chat(
    model_dir: Path,
    out_dir: Path,
    lines: Iterable[str],
    console: Console,
    interactive: bool,
    max_new_tokens: int = 512,
    seed: int | None = None,
) -> None:
    model = AnySeq.from_pretrained(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    session = ChatSession(model, out_dir, console, max_new_tokens, seed)
    console.print(f"AnySeq chat: {model_dir} ({', '.join(model.modalities)}); /help for commands")
    for line in lines:
        if not interactive:
            console.print(f"[dim]> {line.rstrip()}[/dim]")
        if not session.handle(line):
            break
