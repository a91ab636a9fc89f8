"""The web chat at /ui: Gradio, mounted in the API's FastAPI app and sharing its batching queue.

A multimodal textbox takes text with images and audio (uploaded, or recorded where the
browser allows the microphone); the chat shows the reply's text, images and audio
players. Settings: a voice prompt (AnyGPT's voice cloning: spoken replies take its
voice), spoken replies, image replies (a request to draw opens an image), temperature,
top-p, the token budget. Retry regenerates the last reply; Clear starts over. Uploads
pass the same limits as API requests.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI

from anyseq.api import MediaOutput
from anyseq.conversation import Conversation, Media, Message, Part, Text
from anyseq.serve.app import Server
from anyseq.serve.batching import SPEECH, GenerationKey, Job
from anyseq.serve.errors import ApiError
from anyseq.serve.limits import check_audio_header
from anyseq.serve.messages import IMAGE, ReadRequest, audio_media, image_media, respond_with

PATH = "/ui"
AUDIO_FORMATS = {".wav": "wav", ".flac": "flac"}
# System fonts only: the browser may have no network to fetch web fonts from.
THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)


def _upload(path: str, index: int, server: Server) -> Media:
    """An uploaded or recorded file -> a checked media part (image, or speech)."""
    name = f"file {index + 1} ({Path(path).name})"
    kind = (mimetypes.guess_type(path)[0] or "").split("/")[0]
    data = Path(path).read_bytes()
    limits = server.settings.limits
    if kind == "image":
        return image_media(data, name, limits)
    audio_format = AUDIO_FORMATS.get(Path(path).suffix.lower())
    if kind == "audio" and audio_format is not None:
        return audio_media(data, audio_format, SPEECH, name, limits)
    raise ApiError(400, f"{name}: send images, or audio as WAV or FLAC", "unsupported_file")


def _voice_prompt(path: str, server: Server) -> None:
    audio_format = AUDIO_FORMATS.get(Path(path).suffix.lower())
    if audio_format is None:
        raise ApiError(400, f"voice prompt {Path(path).name}: send WAV or FLAC", "unsupported_file")
    check_audio_header(
        Path(path).read_bytes(), audio_format, "voice prompt", server.settings.limits.max_audio_seconds
    )


def _shown(part: str | MediaOutput) -> Any:
    """A reply part as chat content: text, an image, an audio player."""
    if isinstance(part, str):
        return part
    if part.modality == IMAGE:
        return gr.Image(value=part.content, format="png")
    return gr.Audio(value=(part.content.sample_rate, part.content.samples), format="wav")


async def _reply(
    server: Server,
    conversation: list[Message],
    voice: str | None,
    speak: bool,
    draw: bool,
    temperature: float,
    top_p: float,
    max_tokens: int,
) -> tuple[Message, list[Any]]:
    """Generate the assistant's turn for `conversation` (ending with the user's message)."""
    slot = server.admission.enter()
    try:
        media = [
            (f"file {i + 1}", p)
            for i, p in enumerate(conversation[-1].content)
            if isinstance(p, Media) and p.codes is None
        ]
        read = ReadRequest(Conversation(conversation, server.model.system), media)
        if voice is not None:
            _voice_prompt(voice, server)
        wanted = {"text", *(["audio"] if speak else []), *([IMAGE] if draw else [])}
        respond = respond_with(read.conversation, wanted, set(server.model.tokenizers))
        _, budget = await server.tokenize(read, respond, int(max_tokens))
        key = GenerationKey(budget, temperature, top_p, voice)
        generation = await server.batcher.submit(
            Job(read.conversation, key, respond, speak and SPEECH in server.model.tokenizers)
        )
    finally:
        slot.release()
    reply = generation.reply
    shown: list[str | MediaOutput] = [p.strip() if isinstance(p, str) else p for p in reply.parts]
    shown = [p for p in shown if p != ""]
    if generation.speech is not None and generation.speech not in reply.media:
        shown.append(generation.speech)
    return reply.to_message(), [_shown(p) for p in shown] or ["(no reply)"]


def build_ui(server: Server) -> gr.Blocks:
    tokenizers = server.model.tokenizers
    with gr.Blocks(title="AnySeq chat", analytics_enabled=False) as blocks:
        gr.Markdown(
            f"### AnySeq · `{server.name}`\nText, images and speech in and out "
            f"(reads {', '.join(['text', *tokenizers])})."
        )
        conversation = gr.State([])  # list[Message], media as codes
        chat = gr.Chatbot(label="chat", height=460, elem_id="chat")
        box = gr.MultimodalTextbox(
            placeholder="Type a message; attach images or audio",
            file_types=["image", "audio"],
            file_count="multiple",
            sources=["upload", "microphone"],
            show_label=False,
            elem_id="message",
        )
        with gr.Row():
            retry = gr.Button("Retry", elem_id="retry")
            clear = gr.Button("Clear", elem_id="clear")
        with gr.Accordion("Settings", open=False):
            with gr.Row():
                speak = gr.Checkbox(label="spoken replies", value=False, interactive=SPEECH in tokenizers)
                draw = gr.Checkbox(
                    label="image replies (ask it to draw)", value=True, interactive=IMAGE in tokenizers
                )
            voice = gr.Audio(
                label="voice prompt (spoken replies take its voice)", sources=["upload"], type="filepath"
            )
            temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="temperature")
            top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p")
            max_tokens = gr.Slider(
                1,
                server.model.context_length,
                value=min(server.settings.default_max_tokens, server.model.context_length),
                step=1,
                label="max tokens",
            )
        settings = [voice, speak, draw, temperature, top_p, max_tokens]

        async def send(message: dict, history: list, turns: list[Message], *options: Any):
            files, text = message.get("files") or [], (message.get("text") or "").strip()
            if not files and not text:
                raise gr.Error("type a message or attach a file")
            try:
                parts: list[Part] = [_upload(path, i, server) for i, path in enumerate(files)]
                user = Message("user", parts + ([Text(text)] if text else []))
                assistant, shown = await _reply(server, [*turns, user], *options)
            except ApiError as error:
                raise gr.Error(error.message) from error
            history = history + [{"role": "user", "content": {"path": path}} for path in files]
            if text:
                history.append({"role": "user", "content": text})
            history += [{"role": "assistant", "content": item} for item in shown]
            return gr.MultimodalTextbox(value=None), history, [*turns, user, assistant]

        async def again(history: list, turns: list[Message], *options: Any):
            if len(turns) < 2:
                raise gr.Error("nothing to retry")
            kept = turns[:-1]
            try:
                assistant, shown = await _reply(server, kept, *options)
            except ApiError as error:
                raise gr.Error(error.message) from error
            while history and history[-1]["role"] == "assistant":
                history = history[:-1]
            history = history + [{"role": "assistant", "content": item} for item in shown]
            return history, [*kept, assistant]

        box.submit(send, [box, chat, conversation, *settings], [box, chat, conversation])
        retry.click(again, [chat, conversation, *settings], [chat, conversation])
        chat.retry(again, [chat, conversation, *settings], [chat, conversation])
        clear.click(lambda: ([], []), None, [chat, conversation])
        chat.clear(lambda: ([], []), None, [chat, conversation])
    return blocks


def mount_ui(app: FastAPI, server: Server) -> None:
    gr.mount_gradio_app(
        app,
        build_ui(server),
        path=PATH,
        theme=THEME,
        max_file_size=server.settings.limits.max_request_bytes,
        footer_links=[],
    )
