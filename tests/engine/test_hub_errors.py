"""A gated model's download says what to do (accept the licence, add the token) instead of
a 401. The hub is stood in for by a local HTTP server answering as huggingface.co does for a
gated repository without a token (401 with X-Error-Code: GatedRepo)."""

import http.server
import threading

import pytest

from ftstudio.engine.models import ModelError, download_model


class GatedHub(http.server.BaseHTTPRequestHandler):
    def _refuse(self) -> None:
        body = b'{"error": "Access to model is restricted. You must be authenticated to access it."}'
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header(
            "X-Error-Message", "Access to model is restricted and you are not in the authorized list."
        )
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _refuse

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def gated_hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GatedHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    yield server
    server.shutdown()


def test_gated_model_says_accept_the_licence_then_add_the_token(gated_hub):
    with pytest.raises(ModelError) as err:
        download_model("meta-llama/Llama-3.2-1B-Instruct")
    message = str(err.value)
    assert "gated model" in message
    assert (
        "accept its licence" in message
        and "https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct" in message
    )
    assert "add your token" in message and "Hugging Face account" in message
    assert "401" not in message
