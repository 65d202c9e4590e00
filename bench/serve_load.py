"""Benchmark: `defectseg serve` under 8 concurrent clients on 127.0.0.1, against offline predict.

Run: .venv/bin/python bench/serve_load.py [--model release] [--images DIR] [--seconds 30] [--clients 8]
Times `defectseg predict` in-process on the images (after a warm-up), then starts a real server
on a free port, warms it up, and lets the clients post the images round-robin for a fixed time.
Prints requests/s, p50/p95 latency, errors, the server's RSS at the start and end of the load
(and every tenth of it),
and the ratio of served to offline images/s (target: at least 0.8).
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

from defectseg.data.images import IMAGE_SUFFIXES
from defectseg.evaluation.predict import predict

MTD = Path("../shared/datasets/magnetic-tile")


def default_images() -> Path:
    """Magnetic Tile images when the copy is beside the checkout, else the built-in default's."""
    if MTD.is_dir():
        folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
        for path in sorted(p for p in MTD.rglob("*.jpg"))[:64]:
            (folder / f"{path.parent.parent.name}-{path.name}").symlink_to(path.resolve())
        return folder
    return Path("data/prepared/images")


def offline_rate(model: Path, images: list[Path], runtime: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        predict(model, images[:8], Path(out) / "warm-up", None, 16, False, "cpu", runtime=runtime)
        start = time.perf_counter()
        predict(model, images, Path(out) / "timed", None, 16, False, "cpu", runtime=runtime)
        return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("release"))
    parser.add_argument("--images", type=Path)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument("--runtime", choices=["onnxruntime", "torch"], default="onnxruntime", help="the same for predict and the server")
    args = parser.parse_args()
    folder = args.images or default_images()
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    bodies = [(p.name, p.read_bytes()) for p in images]
    offline = offline_rate(args.model, images, args.runtime)
    server = subprocess.Popen([sys.executable, "-m", "defectseg", "serve", "--model", str(args.model), "--port", str(args.port), "--runtime", args.runtime], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(300):
            try:
                requests.get(f"{url}/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        for name, body in bodies[:8]:
            requests.post(f"{url}/predict", files={"file": (name, body)}, timeout=60)
        process = psutil.Process(server.pid)
        memory_start = process.memory_info().rss
        latencies, errors, lock = [], [], threading.Lock()
        deadline = time.monotonic() + args.seconds

        def client(index: int) -> None:
            session, position = requests.Session(), index
            while time.monotonic() < deadline:
                name, body = bodies[position % len(bodies)]
                position += args.clients
                start = time.perf_counter()
                try:
                    ok = session.post(f"{url}/predict", files={"file": (name, body)}, timeout=60).status_code == 200
                except requests.RequestException:
                    ok = False
                with lock:
                    (latencies if ok else errors).append(time.perf_counter() - start)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        samples = []
        while any(thread.is_alive() for thread in threads):
            samples.append(process.memory_info().rss)
            time.sleep(args.seconds / 10)
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        memory_end = process.memory_info().rss
    finally:
        server.terminate()
        server.wait(timeout=20)
    served = len(latencies) / elapsed
    quantiles = statistics.quantiles(latencies, n=20)
    print(f"images: {len(images)} from {folder}; model {args.model} in {args.runtime}; {args.clients} clients for {elapsed:.1f} s")
    print(f"served: {len(latencies)} requests, {served:.1f} requests/s, p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {quantiles[18] * 1000:.0f} ms, errors {len(errors)}")
    print(f"server RSS: {memory_start / 2**20:.0f} MiB at the start of the load, {memory_end / 2**20:.0f} MiB at its end; "
          f"every tenth of the load: {' '.join(f'{s / 2**20:.0f}' for s in samples)} MiB")
    print(f"offline predict: {offline:.1f} images/s; served / offline = {served / offline:.2f} (target 0.8)")


if __name__ == "__main__":
    main()
