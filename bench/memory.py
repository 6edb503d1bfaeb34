"""Peak memory while a 4K PNG is downloaded, verified, stored and attached, against its size.

The pipeline streams the download into a spooled temporary file (on disk past 4 MiB),
checks it with Pillow without decoding the pixels, and hands the file to the storage,
so it should never hold the image in memory even once. Measured through the real
pipeline, ``generate_for(article, input={"resolution": "4K", "output_format": "png",
"aspect_ratio": "16:9"})`` against the Replicate emulator over loopback, each image in
a fresh process (after a warm-up generation, so that imports and connections are not
counted):

- peak RSS added: the kernel's high-water mark (``VmHWM``, reset through
  ``/proc/self/clear_refs``) minus the resident size before the call;
- peak Python allocations: ``tracemalloc``'s peak during a second, identical call
  (apart, because tracing costs memory of its own).

Two images: the emulator's own 4K PNG (a smooth gradient, which compresses to a few
hundred KB, below the spool threshold) and a photo-like 4K PNG of realistic size (about
25 MiB; the emulator's renderer is swapped for one that adds grain). As a yardstick,
the same process then reads the stored file into memory once: that is what one copy
costs, measured the same way.

    python bench/memory.py
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the "bench" package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT, machine, run_main, verdict, workspace  # noqa: E402

INPUT = {"resolution": "4K", "output_format": "png", "aspect_ratio": "16:9"}
TARGET = 1.0
"""Streamed means: the peak stays below one copy of the file (issue 5: not several)."""
MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--child", nargs=3, metavar=("WORKDIR", "BASE_URL", "TOKEN"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        measure_here(Path(args.child[0]), args.child[1], args.child[2])
        return
    with workspace("nanobanana-memory-") as workdir:
        run(workdir)


def run(workdir: Path) -> None:
    from nanobanana_django.testing import replicate as emulator_module

    own_renderer = emulator_module.render_image
    results = {}
    emulator = emulator_module.ReplicateEmulator().start()
    try:
        for name, renderer in (
            ("emulator's 4K PNG", own_renderer),
            ("photo-like 4K PNG", photo_like),
        ):
            emulator_module.render_image = renderer
            child_dir = workdir / str(len(results))
            child_dir.mkdir()
            results[name] = child(child_dir, emulator.base_url, emulator.token)
    finally:
        emulator_module.render_image = own_renderer
        emulator.stop()
    report(results)


def child(workdir: Path, base_url: str, token: str) -> dict:
    """Measure in a fresh interpreter, so that nothing before it inflates the peak."""
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(workdir), base_url, token],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode:
        raise SystemExit(f"the measuring process failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure_here(workdir: Path, base_url: str, token: str) -> None:
    """In the child: warm up, then measure one 4K generation twice and one plain read."""
    from bench.harness import setup_django

    setup_django(workdir)
    from blog.models import Article
    from django.conf import settings

    from nanobanana_django.services import generate_for

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDER": "replicate",
        "REPLICATE_API_TOKEN": token,
        "REPLICATE_BASE_URL": base_url,
    }
    articles = [Article.objects.create(title=f"Memory {i}") for i in range(3)]
    warm = generate_for(articles[0], input={**INPUT, "resolution": "1K"})
    assert warm.status == "succeeded", warm.error_message

    gc.collect()
    before = _reset_peak()
    row = generate_for(articles[1], input=INPUT)
    rss_peak = _status("VmHWM") - before
    assert row.status == "succeeded", row.error_message

    gc.collect()
    tracemalloc.start()
    again = generate_for(articles[2], input=INPUT)
    python_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert again.status == "succeeded", again.error_message

    gc.collect()
    before = _reset_peak()
    with row.image.open("rb") as stored:
        copy = stored.read()
    one_copy = _status("VmHWM") - before
    assert len(copy) == row.size_bytes
    del copy

    print(
        json.dumps(
            {
                "size": row.size_bytes,
                "width": row.width,
                "height": row.height,
                "format": row.image_format,
                "rss_peak": rss_peak,
                "python_peak": python_peak,
                "one_copy": one_copy,
                "rss_before": before,
            }
        )
    )


def _reset_peak() -> int:
    """Reset the kernel's peak RSS of this process; returns the current RSS (bytes)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status("VmRSS")


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def photo_like(seed: str, size: tuple[int, int], output_format: str) -> bytes:
    """A gradient with grain: compresses like a photograph (a 4K PNG is about 25 MiB)."""
    from PIL import Image, ImageChops

    base = Image.linear_gradient("L").resize(size)
    half = (size[0] // 2, size[1] // 2)
    channels = [
        ImageChops.add(
            base,
            Image.effect_noise(half, 8 + i).resize(size, Image.Resampling.BILINEAR),
            offset=-128,
        )
        for i in range(3)
    ]
    buffer = io.BytesIO()
    image = Image.merge("RGB", channels)
    if output_format == "png":
        image.save(buffer, "PNG", compress_level=1)  # as the emulator's own renderer
    else:
        image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def report(results: dict[str, dict]) -> None:
    print(machine())
    print(
        "Storing one image through generate_for() (download, verify, store, attach) against "
        "the emulator; each image in a fresh process, after a warm-up generation."
    )
    print()
    print(
        f"{'image':<20}{'size':>15}{'file':>11}{'peak RSS added':>16}{'ratio':>7}"
        f"{'peak Python':>13}{'ratio':>7}{'one copy':>11}{'ratio':>7}"
    )
    for name, r in results.items():
        size = r["size"]
        dims = f"{r['width']}x{r['height']} {r['format']}"
        print(
            f"{name:<20}{dims:>15}{size / MIB:>7.2f} MiB{r['rss_peak'] / MIB:>12.2f} MiB"
            f"{r['rss_peak'] / size:>7.2f}{r['python_peak'] / MIB:>9.2f} MiB"
            f"{r['python_peak'] / size:>7.2f}{r['one_copy'] / MIB:>7.2f} MiB"
            f"{r['one_copy'] / size:>7.2f}"
        )
    print()
    print("'one copy' is the yardstick: the same process reading the stored file into memory.")
    large = results["photo-like 4K PNG"]
    ratio = max(large["rss_peak"], large["python_peak"]) / large["size"]
    print(
        f"TARGET peak memory storing a {large['size'] / MIB:.1f} MiB 4K PNG: {ratio:.2f} x the "
        f"file's size (the larger of the two peaks) < {TARGET:g} (less than one copy): "
        f"{verdict(ratio < TARGET)}"
    )


if __name__ == "__main__":
    run_main(main)
