"""benchmarks/fuzz_uploads.py: its mutants are reproducible, its oracle (the trainer's open_image in a child process)
reads every seed and refuses a cut one, and its judgement of a 4xx answer holds a problem to docs/API.md. No service
is started: the requests themselves are the script's run, not a test's."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import pytest

from repository_script import REPOSITORY, load_script

fuzz_uploads = load_script("benchmarks/fuzz_uploads.py")

DOCUMENTED = fuzz_uploads.documented_problem_types((REPOSITORY / "docs" / "API.md").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def seeds() -> Dict[str, bytes]:
    return fuzz_uploads.seed_images()


def fingerprint(mutants: List["fuzz_uploads.Mutant"]) -> List[tuple]:
    return [(mutant.name, mutant.mutation, mutant.data) for mutant in mutants]


def test_the_same_seed_makes_the_same_mutants_and_another_seed_others(seeds: Dict[str, bytes]) -> None:
    first = fuzz_uploads.make_mutants(seeds, 4, seed=0)
    assert fingerprint(first) == fingerprint(fuzz_uploads.make_mutants(fuzz_uploads.seed_images(), 4, seed=0))
    other = fuzz_uploads.make_mutants(seeds, 4, seed=1)
    assert len(other) == len(first) == 4 * len(seeds)
    # Most differ: a few structural edits (a truncation at a chunk boundary) may be drawn by both.
    assert sum(a.data != b.data for a, b in zip(first, other)) > len(first) // 2


def test_mutants_are_of_every_seed_all_different_and_none_the_seed_itself(seeds: Dict[str, bytes]) -> None:
    mutants = fuzz_uploads.make_mutants(seeds, 6, seed=0)
    assert {mutant.seed for mutant in mutants} == set(seeds)
    assert len({mutant.data for mutant in mutants}) == len(mutants)
    assert not any(mutant.data == seeds[mutant.seed] for mutant in mutants)
    # Both kinds are drawn: format-aware edits and generic ones.
    mutations = " ".join(mutant.mutation for mutant in mutants)
    for kind in ("IHDR", "SOS", "tag ", "VP8", "truncate@", "bit flips"):
        assert kind in mutations


def test_seeds_cover_the_formats_and_variants_the_service_takes(seeds: Dict[str, bytes]) -> None:
    assert len(seeds) == 52
    assert {name.rsplit(".", 1)[1] for name in seeds} == set(fuzz_uploads.CONTENT_TYPES)
    for name in ("jpg_progressive.jpg", "jpg_cmyk.jpg", "jpg_exif6.jpg", "png_adam7.png", "png_p.png", "png_i16.png",
                 "gif_anim.gif", "bmp_rle8.bmp", "bmp_565.bmp", "bmp_v5_topdown.bmp", "tif_rgb_jpeg.tif",
                 "tif_rgb_lzw_pred.tif", "webp_anim.webp", "webp_alpha_lossless.webp"):
        assert name in seeds


def test_the_oracle_reads_every_seed_and_refuses_a_truncated_one(seeds: Dict[str, bytes], tmp_path: Path) -> None:
    oracle = fuzz_uploads.Oracle(timeout=30)
    try:
        for name, data in seeds.items():
            (tmp_path / name).write_bytes(data)
            verdict = oracle.judge(tmp_path / name)
            assert verdict["pillow"] == "reads", (name, verdict)
        cut = tmp_path / "cut.png"
        cut.write_bytes(seeds["png_rgb.png"][:len(seeds["png_rgb.png"]) // 2])
        verdict = oracle.judge(cut)
        assert verdict["pillow"] == "fails" and verdict["reason"], verdict
    finally:
        oracle.close()


def test_the_oracle_does_not_decode_past_the_services_size_limits(seeds: Dict[str, bytes], tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"   # IHDR says 8000 x 8000: over Images:MaxPixels, under Pillow's bomb limit
    data = seeds["png_rgb.png"]
    ihdr = fuzz_uploads.put(fuzz_uploads.put(data[16:29], 0, ">I", 8000), 4, ">I", 8000)
    huge.write_bytes(data[:8] + fuzz_uploads.png_chunk(b"IHDR", ihdr) + data[33:])
    assert fuzz_uploads.judge(str(huge))["pillow"] == "over-limit"


def problem(**members: object) -> bytes:
    return json.dumps(members).encode()


def test_the_documented_problem_types_are_read_from_the_api_doc() -> None:
    assert DOCUMENTED["urn:protopnet:problem:image-truncated"] == 400
    assert DOCUMENTED["urn:protopnet:problem:image-too-many-pixels"] == 422
    assert DOCUMENTED["urn:protopnet:problem:unsupported-media-type"] == 415
    assert len(DOCUMENTED) >= 20


def test_a_documented_problem_passes() -> None:
    body = problem(type="urn:protopnet:problem:image-truncated", title="The image is truncated", status=400,
                   detail="The PNG image is truncated: it ends after 120 of 248 bytes.")
    assert fuzz_uploads.problem_issues(400, "application/problem+json; charset=utf-8", body, DOCUMENTED) == []


@pytest.mark.parametrize("status, content_type, body, issue", [
    (400, "text/plain", b"bad image", "not application/problem+json"),
    (400, "application/json", problem(type="urn:protopnet:problem:image-truncated", detail="Cut."),
     "not application/problem+json"),
    (400, "application/problem+json", problem(type="urn:protopnet:problem:image-broken", detail="Broken."),
     "not in docs/API.md"),
    (400, "application/problem+json", problem(type="about:blank", detail="Broken."), "not in docs/API.md"),
    (400, "application/problem+json", problem(type="urn:protopnet:problem:image-too-large", detail="Large."),
     "documented 413"),
    (400, "application/problem+json", problem(type="urn:protopnet:problem:image-truncated", status=500, detail="Cut."),
     "status member"),
    (400, "application/problem+json", problem(type="urn:protopnet:problem:image-truncated"), "no detail"),
    (400, "application/problem+json", problem(type="urn:protopnet:problem:image-truncated", detail=" "), "no detail"),
    (400, "application/problem+json", problem(type="urn:protopnet:problem:image-truncated", detail="Cut\nhere."),
     "not one printable line"),
    (400, "application/problem+json", problem(type="urn:protopnet:problem:image-truncated", detail="Cut \x1b[31m."),
     "not one printable line"),
    (400, "application/problem+json", b"<html>400</html>", "not JSON"),
])
def test_a_bad_problem_is_flagged(status: int, content_type: str, body: bytes, issue: str) -> None:
    issues = fuzz_uploads.problem_issues(status, content_type, body, DOCUMENTED)
    assert any(issue in found for found in issues), issues


def seed_mutant() -> "fuzz_uploads.Mutant":
    return fuzz_uploads.Mutant("png_rgb", "png_rgb.png", "png", "seed", b"")


def test_answers_make_the_findings_that_fail_the_run() -> None:
    mutant = fuzz_uploads.Mutant("png_rgb-001", "png_rgb.png", "png", "truncate@9", b"")
    good = fuzz_uploads.Answer(400, "application/problem+json",
                               problem(type="urn:protopnet:problem:image-truncated", status=400, detail="Cut."), 0.01)

    def kinds(answer: "fuzz_uploads.Answer", of: "fuzz_uploads.Mutant" = mutant) -> List[str]:
        return [f["kind"] for f in fuzz_uploads.answer_findings(of, "raw", answer, 2.0, DOCUMENTED)]

    assert kinds(good) == []
    assert kinds(fuzz_uploads.Answer(500, "application/problem+json", b"{}", 0.01)) == ["server-error"]
    fault = problem(type="urn:protopnet:problem:image-not-decodable", status=400,
                    detail="The image cannot be decoded here: the decoder failed on it (IndexOutOfRangeException), a fault of the service's, which it has logged. Send the picture as PNG or JPEG.")
    assert kinds(fuzz_uploads.Answer(400, "application/problem+json", fault, 0.01)) == ["decoder-fault"]
    assert kinds(fuzz_uploads.Answer(0, seconds=10, error="no answer in 10 s")) == ["no-answer"]
    assert kinds(fuzz_uploads.Answer(200, "application/json", b"{}", 3.5)) == ["slow"]
    assert kinds(fuzz_uploads.Answer(200, "application/json", b"{}", 0.01), seed_mutant()) == []
    assert kinds(good, seed_mutant()) == ["seed-refused"]
    assert "slow" not in fuzz_uploads.FAILING
    assert {"server-error", "decoder-fault", "no-answer", "bad-problem", "seed-refused"} <= set(fuzz_uploads.FAILING)


def test_the_comparison_with_pillow_counts_each_mutant_in_its_column() -> None:
    column = fuzz_uploads.comparison_column
    assert column(200, "reads") == "both accept"
    assert column(400, "fails") == "both refuse"
    assert column(200, "fails") == "service 200, Pillow fails"
    assert column(422, "reads") == "service 4xx, Pillow reads"
    assert column(422, "over-limit") == "not compared"
    assert column(0, "reads") == column(500, "fails") == "not compared"
    results = [{"format": "png", "seed_image": False, "raw": {"status": 400}, "oracle": {"pillow": "reads"}},
               {"format": "png", "seed_image": False, "raw": {"status": 200}, "oracle": {"pillow": "reads"}},
               {"format": "png", "seed_image": True, "raw": {"status": 200}, "oracle": {"pillow": "reads"}}]
    table = fuzz_uploads.comparison_table(results).splitlines()
    assert table[0] == ("| format | mutants | both accept | both refuse | service 200, Pillow fails | "
                        "service 4xx, Pillow reads | not compared |")
    assert table[2] == "| png | 2 | 1 | 0 | 0 | 1 | 0 |"
