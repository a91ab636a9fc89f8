"""The web chat in Debian's Chromium, driven by Playwright: upload an image, send, see the reply."""

from pathlib import Path

import pytest
from serve_helpers import png, running, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make setup installs it)")
def test_web_chat_image_in_reply_out(checkpoint, tmp_path, artifacts):
    from playwright.sync_api import expect, sync_playwright

    image = tmp_path / "red.png"
    image.write_bytes(png((220, 30, 30)))
    with running(checkpoint, ui=True) as (url, app), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url + "/ui/")
            message = page.locator("#message")
            message.locator("textarea").wait_for(timeout=60_000)
            message.locator("input[type=file]").set_input_files(str(image))
            expect(message.locator("img")).to_be_visible(timeout=30_000)  # the attachment preview
            message.locator("textarea").fill("Describe the scene in this picture.")
            message.locator("textarea").press("Enter")

            chat = page.locator("#chat")
            expect(chat.get_by_text("Describe the scene in this picture.")).to_be_visible(timeout=30_000)
            expect(chat.locator(".bot")).not_to_have_count(0, timeout=30_000)  # the reply is shown
            expect(chat.locator(".user img")).to_have_count(1)  # the uploaded image, in the chat
            page.screenshot(path=str(artifacts / "web_chat.png"), full_page=True)
            server = app.state.server
            assert server.batcher.generations == 1

            page.locator("#retry").click()  # a new reply replaces the last one
            assert wait_until(lambda: server.batcher.generations == 2, timeout=30)
            expect(chat.locator(".bot")).to_have_count(1, timeout=30_000)

            page.get_by_text("Settings").click()
            page.get_by_label("spoken replies").check()
            message.locator("textarea").fill("Would you kindly read this text out loud")
            message.locator("textarea").press("Enter")
            expect(chat.locator(".bot audio")).to_have_count(1, timeout=30_000)  # a player for the speech
            page.screenshot(path=str(artifacts / "web_chat_spoken.png"), full_page=True)

            page.locator("#clear").click()
            expect(chat.locator(".message")).to_have_count(0, timeout=30_000)
        finally:
            browser.close()
        assert (artifacts / "web_chat.png").stat().st_size > 10_000
