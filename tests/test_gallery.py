"""The identity gallery's contract, run against both backends (Edge on tmp_path, server API
through qdrant-client's in-process mode), plus Edge persistence and crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from stream.gallery import (
    Appearance,
    Gallery,
    GalleryConfig,
    GalleryError,
    Tracklet,
    TrackletRecord,
)
from stream.gallery import gallery as gallery_module
from stream.gallery.backend import CandidateFilter
from stream.gallery.edge import EDGE_FILTER_MODELS, EdgeBackend
from stream.gallery.records import box_distance_in_heights
from stream.gallery.server import ServerBackend

pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
]

DIM, PARTS = 32, 4
ALL_VISIBLE = np.ones(PARTS)


class Person:
    """An identity: global and part vectors; sightings add small noise (distance ≈ 0.01),
    while two persons are ≈ 2 apart (cosine ≈ 1 for the global and the part term each)."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.global_vector = rng.normal(size=DIM)
        self.part_vectors = rng.normal(size=(PARTS, DIM))
        self.rng = rng

    def sighting(self, visibility: np.ndarray = ALL_VISIBLE, noise: float = 0.05) -> Appearance:
        return Appearance(
            global_vector=self.global_vector + noise * self.rng.normal(size=DIM),
            part_vectors=self.part_vectors + noise * self.rng.normal(size=(PARTS, DIM)),
            visibility=visibility,
        )


def tracklet(
    camera: str, track: int, appearance: Appearance, t: float = 0.0, **fields: object
) -> Tracklet:
    return Tracklet(
        camera=camera, track=track, t_first=t, t_last=t + 1.0, appearance=appearance, **fields
    )


class SharedServerBackend(ServerBackend):
    """One in-process "server" that outlives a Gallery, so the tests can reopen against it."""

    def close(self) -> None:
        """Kept open: the test's server stays up while galleries come and go."""


@pytest.fixture(params=["edge", "server"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """``reopen(**config_changes) -> Gallery``: opens the same stored collection each time."""
    backend = SharedServerBackend(":memory:", None, "tracklets")
    opened: list[Gallery] = []

    def open_gallery(**changes: object) -> Gallery:
        # fsyncs on a shared disk cost 10-250 ms each: durability="flush" has its own test below
        fields = (
            dict(vector_size=DIM, num_parts=PARTS, top_n=10, threshold=0.3, durability="wal")
            | changes
        )
        if request.param == "edge":
            gallery = Gallery.open(GalleryConfig(path=tmp_path / "gallery", **fields))
        else:
            gallery = Gallery(GalleryConfig(url=":memory:", **fields), backend)
        opened.append(gallery)
        return gallery

    yield open_gallery
    for gallery in opened:
        gallery.close()
    backend.client.close()


def test_same_person_on_another_camera_gets_the_same_identity(reopen) -> None:
    gallery = reopen()
    alice, bob = Person(1), Person(2)
    first = gallery.match(tracklet("cam-a", 1, alice.sighting(), t=0.0))
    again = gallery.match(tracklet("cam-b", 7, alice.sighting(), t=5.0))
    other = gallery.match(tracklet("cam-b", 8, bob.sighting(), t=5.0))

    assert first.is_new and first.score is None and first.global_id == 1
    assert not again.is_new and again.global_id == first.global_id and again.score < 0.05
    assert other.is_new and other.global_id == 2 and other.score > 1.0
    assert len(gallery) == 3
    assert [(r.camera, r.track) for r in gallery.records_of(1)] == [("cam-a", 1), ("cam-b", 7)]


def test_search_filters_by_camera_and_time(reopen) -> None:
    gallery = reopen()
    people = [Person(10 + i) for i in range(6)]
    for i, person in enumerate(people):
        gallery.match(tracklet(f"cam-{i % 3}", i, person.sighting(), t=10.0 * i))
    query = people[0].sighting()

    top = gallery.search(query, limit=6)
    assert len(top) == 6 and top[0].record.track == 0 and top[0].distance < 0.05
    assert [h.distance for h in top] == sorted(h.distance for h in top)
    assert {h.record.camera for h in gallery.search(query, camera="cam-1")} == {"cam-1"}
    assert "cam-0" not in {h.record.camera for h in gallery.search(query, exclude_camera="cam-0")}
    # tracklet i spans [10 i, 10 i + 1]: since keeps t_last >= since, until keeps t_first <= until
    assert {h.record.track for h in gallery.search(query, since=21.5, until=40.0)} == {3, 4}


def test_a_tracklet_is_never_matched_with_its_own_camera(reopen) -> None:
    gallery = reopen()
    alice = Person(3)
    first = gallery.match(tracklet("cam-a", 1, alice.sighting(), t=0.0))
    update = gallery.match(tracklet("cam-a", 1, alice.sighting(), t=3.0))
    twin_track = gallery.match(tracklet("cam-a", 2, alice.sighting(), t=4.0))

    assert not update.is_new and update.global_id == first.global_id
    assert twin_track.is_new and twin_track.score is None  # cam-a's own tracklets are no candidates
    assert len(gallery) == 2


def test_updates_keep_the_identity_and_replace_the_features(reopen) -> None:
    gallery = reopen()
    alice = Person(4)
    gallery.match(tracklet("cam-a", 1, alice.sighting(), t=0.0))
    matched = gallery.match(tracklet("cam-b", 1, alice.sighting(), t=5.0))
    occluded = alice.sighting(visibility=np.array([1.0, 1.0, 0.0, 0.0]))
    update = Tracklet(camera="cam-b", track=1, t_first=6.0, t_last=9.0, appearance=occluded)

    again = gallery.match(update)
    assert (again.global_id, again.is_new) == (matched.global_id, False)
    assert again.score == pytest.approx(matched.score)  # the distance it was matched at
    stored = gallery.get("cam-b", 1)
    assert stored.global_id == matched.global_id and len(gallery) == 2
    assert (stored.t_first, stored.t_last) == (5.0, 9.0)  # first sighting kept, last moved on
    np.testing.assert_allclose(stored.appearance.visibility, [1.0, 1.0, 0.0, 0.0])
    assert gallery.get("cam-b", 99) is None


def test_part_distance_reranks_candidates_whose_global_vectors_tie(reopen) -> None:
    gallery = reopen(threshold=0.3, lam=1.0)
    alice = Person(5)
    rng = np.random.default_rng(0)
    # A: Alice with her legs hidden (garbage part vectors there, visibility 0), global a bit off.
    hidden_legs = alice.part_vectors.copy()
    hidden_legs[2:] = rng.normal(size=(2, DIM))
    look_alike_a = Appearance(
        global_vector=alice.global_vector + 0.15 * rng.normal(size=DIM),
        part_vectors=hidden_legs,
        visibility=np.array([1.0, 1.0, 0.0, 0.0]),
    )
    # B: Alice's global vector exactly, but every visible part belongs to someone else.
    look_alike_b = Appearance(
        global_vector=alice.global_vector,
        part_vectors=rng.normal(size=(PARTS, DIM)),
        visibility=ALL_VISIBLE,
    )
    a = gallery.match(tracklet("cam-a", 1, look_alike_a))
    b = gallery.match(tracklet("cam-b", 1, look_alike_b))
    query = Appearance(
        global_vector=alice.global_vector, part_vectors=alice.part_vectors, visibility=ALL_VISIBLE
    )

    by_global = [h.record.camera for h in gallery.search(query, rerank=False)]
    by_parts = gallery.search(query, rerank=True)
    assert by_global == ["cam-b", "cam-a"]
    assert [h.record.camera for h in by_parts] == ["cam-a", "cam-b"]
    assert by_parts[0].distance < 0.1 < 0.9 < by_parts[1].distance
    # the matcher decides on the re-ranked order: A's identity, not the global nearest B's
    decided = gallery.match(tracklet("cam-c", 1, query))
    assert decided.global_id == a.global_id != b.global_id and not decided.is_new


def test_an_identity_already_on_the_camera_meanwhile_is_not_lent_again(reopen) -> None:
    gallery = reopen()
    alice, twin = Person(60), Person(60)  # the same vectors: only the camera rule tells them apart
    first = gallery.match(tracklet("cam-a", 1, alice.sighting(), t=0.0))
    assert gallery.match(tracklet("cam-b", 1, alice.sighting(), t=5.0)).global_id == 1
    overlapping = gallery.match(tracklet("cam-b", 2, twin.sighting(), t=5.5))  # cam-b track 1 too
    later = gallery.match(tracklet("cam-b", 3, alice.sighting(), t=20.0))  # after track 1 ended
    assert overlapping.is_new and overlapping.global_id != first.global_id
    assert not later.is_new and later.global_id == first.global_id


def test_a_person_back_in_the_same_view_gets_the_identity_of_the_ended_tracklet(reopen) -> None:
    gallery = reopen(time_window_s=30.0)
    alice, bob = Person(61), Person(62)
    first = gallery.match(tracklet("cam-a", 1, alice.sighting(), t=0.0))  # seen 0..1
    still_open = gallery.match(tracklet("cam-a", 2, alice.sighting(), t=3.0))
    assert still_open.is_new  # track 1 has not ended: it may be someone still in view

    ended = gallery.end("cam-a", 1, t_end=2.0)
    assert ended is not None and ended.t_end == 2.0 and gallery.get("cam-a", 1).t_end == 2.0
    back = gallery.match(tracklet("cam-a", 3, alice.sighting(), t=10.0))
    stranger = gallery.match(tracklet("cam-a", 4, bob.sighting(), t=10.5))
    too_late = gallery.match(tracklet("cam-a", 5, alice.sighting(), t=100.0))  # window: 30 s
    assert not back.is_new and back.global_id == first.global_id and back.score < 0.05
    assert stranger.is_new
    assert too_late.is_new and too_late.score is None
    assert gallery.end("cam-a", 99, t_end=1.0) is None  # unknown: nothing stored


def test_a_track_the_tracker_broke_rejoins_its_identity_once_the_first_part_ended(
    reopen,
) -> None:
    """The tracker loses alice and starts track 2 before it gives up track 1 (its lost-track
    buffer): track 2 founds an identity; once track 1 has ended, track 2's next re-match joins
    alice's (relink_reentry) — while it is still its identity's only tracklet. One that others
    joined stays."""
    gallery = reopen(relink=True, relink_reentry=True)
    alice, bob = Person(66), Person(67)
    first = gallery.match(tracklet("cam-a", 1, alice.sighting(), t=0.0))  # 0..1
    broken = gallery.match(tracklet("cam-a", 2, alice.sighting(), t=1.5))  # 1.5..2.5
    assert broken.is_new and broken.global_id != first.global_id
    gallery.end("cam-a", 1, t_end=2.0)
    later = Tracklet(camera="cam-a", track=2, t_first=1.5, t_last=4.0, appearance=alice.sighting())
    relinked = gallery.match(later)
    assert relinked.global_id == first.global_id and not relinked.is_new
    assert [r.track for r in gallery.records_of(first.global_id)] == [1, 2]
    assert gallery.records_of(broken.global_id) == []  # the founded identity is gone

    bob_a = gallery.match(tracklet("cam-a", 5, bob.sighting(), t=10.0))
    gallery.match(tracklet("cam-b", 5, bob.sighting(), t=10.0))  # joins bob_a's identity
    gallery.end("cam-a", 1, t_end=2.0)
    again = gallery.match(tracklet("cam-a", 5, alice.sighting(), t=10.0))  # not alone: stays
    assert again.global_id == bob_a.global_id


def test_by_default_a_broken_track_does_not_relink_to_its_own_cameras_ended_track(reopen) -> None:
    """Without positions in the gallery, an ended track of the same view may be someone who just
    left it (relink_reentry is off); with relink off nothing re-matches at all."""
    for track, changes in ((1, {}), (11, {"relink": False})):
        with reopen(**changes) as gallery:
            alice = Person(68 + track)
            gallery.match(tracklet("cam-a", track, alice.sighting(), t=0.0))
            broken = gallery.match(tracklet("cam-a", track + 1, alice.sighting(), t=1.5))
            gallery.end("cam-a", track, t_end=2.0)
            again = gallery.match(tracklet("cam-a", track + 1, alice.sighting(), t=1.5))
        assert again.global_id == broken.global_id


def test_a_tracklet_still_alone_joins_another_cameras_identity_at_a_re_match(reopen) -> None:
    """Alice's first crops on cam-a were poor: her tracklet founded an identity, and cam-b's
    tracklet of her founded another. Once cam-a's pooled appearance is clear, its re-match joins
    cam-b's identity (relink, the default); with relink off it keeps its own."""
    for track, relink in ((1, True), (11, False)):
        with reopen(relink=relink) as gallery:
            alice = Person(70 + track)
            poor = gallery.match(tracklet("cam-a", track, alice.sighting(noise=2.0), t=0.0))
            other_view = gallery.match(tracklet("cam-b", track, alice.sighting(), t=0.5))
            clear = gallery.match(tracklet("cam-a", track, alice.sighting(), t=0.0))
        assert poor.is_new and other_view.is_new
        expected = other_view.global_id if relink else poor.global_id
        assert clear.global_id == expected and not clear.is_new


def test_a_reentry_candidate_must_have_ended_before_the_new_tracklet_began(reopen) -> None:
    gallery = reopen()
    alice = Person(63)
    gallery.match(tracklet("cam-a", 1, alice.sighting(), t=0.0, t_end=6.0))  # seen 0..1
    overlapping = gallery.match(tracklet("cam-a", 2, alice.sighting(), t=0.5))  # began before 1
    ended_later = gallery.match(tracklet("cam-a", 3, alice.sighting(), t=2.0))  # 2..3, end at 6
    after = gallery.match(tracklet("cam-a", 4, alice.sighting(), t=6.0))
    assert overlapping.is_new and ended_later.is_new
    assert not after.is_new and after.global_id == 1


def test_a_reentry_must_be_reachable_from_where_the_ended_tracklet_left_the_view(
    reopen,
) -> None:
    """Alice leaves the view on the right (last box centred at x=600, 200 px tall) at t=1; a
    look-alike entering on the left (x=40: 2.8 heights away) 0.5 s later cannot be her at
    2 heights/s (0.5 + 2 x 0.5 = 1.5 heights), 5 s later she could; back where she left,
    0.5 s later, she is. Without boxes, or with the check off, the candidate is not checked."""
    right, left = (550.0, 100.0, 650.0, 300.0), (0.0, 100.0, 80.0, 300.0)
    cases = [  # (config changes, first box of the new tracklet, its start, joins?)
        ({}, left, 1.5, False),
        ({}, left, 6.0, True),
        ({}, right, 1.5, True),
        ({"reentry_max_speed": None}, left, 1.5, True),
        ({}, None, 1.5, True),
    ]
    for track, (changes, box_first, t_first, joins) in enumerate(cases, start=1):
        with reopen(**changes) as gallery:
            alice = Person(90 + track)
            run = f"case-{track}"
            left_view = Tracklet(
                camera="cam-a", track=1, run=run, t_first=0.0, t_last=1.0, t_end=1.2,
                appearance=alice.sighting(), box_first=left, box_last=right,
            )  # fmt: skip
            first = gallery.match(left_view)
            assert gallery.get("cam-a", 1, run).box_last == right  # stored and read back
            entering = Tracklet(
                camera="cam-a", track=2, run=run, t_first=t_first, t_last=t_first + 1.0,
                appearance=alice.sighting(), box_first=box_first,
            )  # fmt: skip
            match = gallery.match(entering)
        assert (match.global_id == first.global_id) is joins, (changes, box_first, t_first)
    assert box_distance_in_heights(right, left) == pytest.approx(560 / 200)
    assert box_distance_in_heights((0.0, 5.0, 9.0, 5.0), (1.0, 5.0, 9.0, 5.0)) is None  # 0 px


def test_a_record_stored_before_tracklets_had_boxes_reads_back_without_them() -> None:
    record = TrackletRecord(
        camera="cam-a", track=1, t_first=0.0, t_last=1.0, appearance=Person(5).sighting(),
        global_id=3, box_first=(1.0, 2.0, 3.0, 4.0), box_last=(5.0, 6.0, 7.0, 8.0),
    )  # fmt: skip
    payload = record.to_payload()
    assert payload["box_first"] == [1.0, 2.0, 3.0, 4.0] and payload["box_last"][3] == 8.0
    older = {k: v for k, v in payload.items() if k not in ("box_first", "box_last")}
    read = TrackletRecord.from_point(older, record.appearance.global_vector)
    assert read.box_first is None and read.box_last is None and read.global_id == 3


def test_runs_never_share_a_tracklet_or_lend_it_their_identity(reopen) -> None:
    """Track ids restart in every run: run B's track 1 is not run A's track 1."""
    gallery = reopen()
    alice, bob = Person(64), Person(65)
    a = gallery.match(tracklet("cam-a", 1, alice.sighting(), t=0.0, run="run-a"))
    b = gallery.match(tracklet("cam-a", 1, bob.sighting(), t=0.0, run="run-b"))
    assert a.is_new and b.is_new and a.global_id != b.global_id and len(gallery) == 2
    stored = gallery.get("cam-a", 1, run="run-a")
    assert stored.global_id == a.global_id and stored.run == "run-a"
    assert stored.appearance.global_vector @ alice.global_vector > 0.9 * np.linalg.norm(
        alice.global_vector
    )
    assert gallery.get("cam-a", 1) is None  # the id of a run-less tracklet is another point


def test_filters_in_qdrant_and_in_python_admit_the_same_points(reopen) -> None:
    """`CandidateFilter.build` (Qdrant) and `.admits` (Edge's planned search) agree."""
    gallery = reopen()
    rng = np.random.default_rng(5)
    records = []
    for i in range(120):
        t_first = float(rng.uniform(0, 50))
        t_last = t_first + float(rng.uniform(0, 10))
        ended = rng.random() < 0.6
        records.append(
            TrackletRecord(
                camera=f"cam-{i % 3}",
                track=i,
                t_first=t_first,
                t_last=t_last,
                t_end=t_last + float(rng.uniform(0, 5)) if ended else None,
                appearance=Person(2000 + i).sighting(),
                global_id=i + 1,
            )
        )
    gallery.add(records)
    backend = gallery._backend
    for where in [
        CandidateFilter(exclude_camera="cam-1"),
        CandidateFilter(exclude_camera="cam-1", reentry=(30.0, 32.0)),
        CandidateFilter(exclude_camera="cam-2", reentry=(20.0, 25.0), t_last_min=10.0),
        CandidateFilter(camera="cam-0", t_first_max=20.0),
    ]:
        in_qdrant = {p.payload["track"] for p in backend.scroll(where)}
        in_python = {r.track for r in records if where.admits(r.to_payload())}
        assert in_qdrant == in_python and 0 < len(in_python) < len(records)


def test_time_window_keeps_old_tracklets_out(reopen) -> None:
    gallery = reopen(time_window_s=10.0)
    alice, bob = Person(6), Person(7)
    gallery.match(tracklet("cam-a", 1, alice.sighting(), t=0.0))  # last seen at t=1
    gallery.match(tracklet("cam-a", 2, bob.sighting(), t=0.0))
    assert gallery.match(tracklet("cam-b", 1, alice.sighting(), t=8.0)).global_id == 1
    late_bob = gallery.match(tracklet("cam-b", 2, bob.sighting(), t=30.0))
    assert late_bob.is_new and late_bob.global_id == 3


def test_a_batch_matches_in_order_and_later_members_see_earlier_ones(reopen) -> None:
    gallery = reopen()
    alice = Person(8)
    batch = [tracklet("cam-a", 1, alice.sighting()), tracklet("cam-b", 1, alice.sighting())]
    first, second = gallery.match_batch(batch)
    assert first.is_new and second.global_id == first.global_id and not second.is_new


def test_reopening_keeps_identities_and_continues_the_id_sequence(reopen) -> None:
    gallery = reopen()
    people = [Person(20 + i) for i in range(3)]
    ids = [
        gallery.match(tracklet("cam-a", i, p.sighting())).global_id for i, p in enumerate(people)
    ]
    gallery.close()

    reopened = reopen()
    assert len(reopened) == 3 and reopened.next_global_id == 4
    assert [reopened.get("cam-a", i).global_id for i in range(3)] == ids == [1, 2, 3]
    assert reopened.match(tracklet("cam-b", 0, people[1].sighting(), t=2.0)).global_id == 2
    assert reopened.match(tracklet("cam-b", 1, Person(99).sighting(), t=2.0)).global_id == 4


def test_imported_records_keep_their_ids_and_move_the_sequence_on(reopen) -> None:
    gallery = reopen()
    imported = [
        TrackletRecord(
            camera="cam-a", track=t, t_first=0.0, t_last=1.0, appearance=p.sighting(), global_id=g
        )
        for t, (p, g) in enumerate([(Person(40), 7), (Person(41), 3)])
    ]
    gallery.add(imported)
    assert gallery.next_global_id == 8 and gallery.get("cam-a", 1).global_id == 3
    assert gallery.match(tracklet("cam-b", 1, Person(41).sighting())).global_id == 3
    assert gallery.match(tracklet("cam-b", 2, Person(42).sighting())).global_id == 8


def test_partitioned_ids_never_collide_and_continue_after_reopening(reopen) -> None:
    strangers = [tracklet(f"cam-{i}", i, Person(50 + i).sighting()) for i in range(3)]
    gallery = reopen(id_offset=1, id_stride=3)
    matches = gallery.match_batch(strangers)
    assert [m.global_id for m in matches] == [1, 4, 7] and all(m.is_new for m in matches)
    gallery.close()

    for offset, next_id in [(1, 10), (0, 9)]:  # this worker again, then another one
        reopened = reopen(id_offset=offset, id_stride=3)
        assert reopened.next_global_id == next_id
        reopened.close()
    with pytest.raises(ValueError, match="id_offset 3 must lie in"):
        reopen(id_offset=3, id_stride=3)


def test_planned_filtered_search_answers_as_the_filtered_search_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edge's planned search (unfiltered top-N·factor checked in Python, else the filtered
    search) returns what the filtered search returns, for filters passing most or few points."""
    rng = np.random.default_rng(0)
    config = GalleryConfig(
        path=tmp_path / "g", vector_size=DIM, num_parts=PARTS, top_n=5, durability="wal"
    )
    records = [
        TrackletRecord(
            camera=f"cam-{i % 4}",
            track=i,
            t_first=float(i),
            t_last=float(i) + 2.0,
            appearance=Person(1000 + i).sighting(),
            global_id=i + 1,
        )
        for i in range(400)
    ]
    queries = [Appearance(rng.normal(size=DIM), rng.normal(size=(PARTS, DIM)), ALL_VISIBLE)]
    queries += [records[7].appearance]
    filters = [
        dict(exclude_camera="cam-1"),  # passes 3/4: answered from the unfiltered top 20
        dict(exclude_camera="cam-1", since=50.0),  # most pass
        dict(camera="cam-2", until=30.0),  # 8 of 400 pass: Edge's filtered search answers
        dict(camera="cam-3", since=390.0),  # 3 pass: fewer than the limit
    ]
    answers, searches = {}, {}
    nearest = EdgeBackend._nearest

    def counting_nearest(self, vector, limit, where, hnsw_ef):
        filtered = where.build(EDGE_FILTER_MODELS) is not None
        searches[variant]["filtered" if filtered else "unfiltered"] += 1
        return nearest(self, vector, limit, where, hnsw_ef)

    monkeypatch.setattr(EdgeBackend, "_nearest", counting_nearest)
    estimate = EdgeBackend._pass_fraction
    for variant, factor, pass_fraction in [
        ("filtered only", 1, estimate),
        ("planned", 4, estimate),
        ("always planned", 4, lambda self, where: 1.0),  # selective filters fall back
    ]:
        monkeypatch.setattr(EdgeBackend, "_pass_fraction", pass_fraction)
        searches[variant] = {"filtered": 0, "unfiltered": 0}
        with Gallery.open(config.model_copy(update={"edge_prefilter_factor": factor})) as g:
            if factor == 1:
                g.add(records)
            answers[variant] = [
                [(h.record.track, round(h.similarity, 5)) for h in g.search(q, 5, **f)]
                for q in queries
                for f in filters
            ]
    assert answers["planned"] == answers["always planned"] == answers["filtered only"]
    assert [len(a) for a in answers["filtered only"][:4]] == [5, 5, 5, 3]
    assert searches["filtered only"] == {"filtered": 8, "unfiltered": 0}
    assert searches["always planned"] == {"filtered": 4, "unfiltered": 8}  # 4 fallbacks
    # Edge's estimate sends the selective filters to its filtered search without a first scan
    assert searches["planned"] == {"filtered": 4, "unfiltered": 4}


def test_a_gallery_of_another_model_is_refused_and_left_intact(reopen) -> None:
    gallery = reopen()
    gallery.match(tracklet("cam-a", 1, Person(30).sighting()))
    gallery.close()

    with pytest.raises(GalleryError, match=r"stores 32-d global vectors but the model makes 64"):
        reopen(vector_size=64)
    with pytest.raises(GalleryError, match=r"stores 4 part vectors .* model makes 6"):
        reopen(num_parts=6)
    intact = reopen()
    assert len(intact) == 1 and intact.get("cam-a", 1).global_id == 1


def test_appearances_of_another_shape_are_refused(reopen) -> None:
    gallery = reopen()
    wrong = Appearance(
        global_vector=np.ones(DIM + 1),
        part_vectors=np.ones((PARTS, DIM + 1)),
        visibility=ALL_VISIBLE,
    )
    with pytest.raises(GalleryError, match=r"d=33, K=4; the gallery .* holds d=32, K=4"):
        gallery.match(tracklet("cam-a", 1, wrong))
    assert len(gallery) == 0


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="exactly one of 'path'"):
        GalleryConfig(vector_size=DIM)
    with pytest.raises(ValueError, match="visibility must be"):
        Appearance(global_vector=np.ones(DIM), part_vectors=np.ones((PARTS, DIM)), visibility=[1])
    with pytest.raises(ValueError, match="all zeros"):
        Appearance(global_vector=np.zeros(DIM), part_vectors=np.ones((1, DIM)), visibility=[1])
    with pytest.raises(ValueError, match="t_first 5.0 is after t_last 1.0"):
        Tracklet(camera="c", track=1, t_first=5.0, t_last=1.0, appearance=Person(0).sighting())
    with pytest.raises(ValueError, match=r"box_last must be \[x1, y1, x2, y2\]"):
        Tracklet(
            camera="c", track=1, t_first=0.0, t_last=1.0, appearance=Person(0).sighting(),
            box_last=(10.0, 50.0, 20.0, 40.0),
        )  # fmt: skip


def test_edge_gallery_open_twice_is_a_clear_error(tmp_path: Path) -> None:
    config = GalleryConfig(path=tmp_path, vector_size=DIM, num_parts=PARTS)
    with Gallery.open(config), pytest.raises(GalleryError, match="open elsewhere"):
        Gallery.open(config)


WRITER = """
import sys
import numpy as np
from stream.gallery import Appearance, Gallery, GalleryConfig, Tracklet

config = GalleryConfig.model_validate_json(sys.argv[1])
rng = np.random.default_rng(0)
gallery = Gallery.open(config)
for i in range(1_000_000):
    appearance = Appearance(
        global_vector=rng.normal(size=config.vector_size),
        part_vectors=rng.normal(size=(config.num_parts, config.vector_size)),
        visibility=np.ones(config.num_parts),
    )
    match = gallery.match(
        Tracklet(camera=f"cam-{i % 3}", track=i, t_first=i, t_last=i + 1, appearance=appearance)
    )
    print(i, match.global_id, flush=True)  # printed only once match() returned: acknowledged
"""


@pytest.mark.parametrize("durability", ["flush", "wal"])
def test_edge_gallery_killed_mid_write_keeps_every_acknowledged_identity(
    tmp_path: Path, durability: str
) -> None:
    config = GalleryConfig(
        path=tmp_path / "g", vector_size=DIM, num_parts=PARTS, durability=durability
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, config.model_dump_json()],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    acknowledged: dict[int, int] = {}
    try:
        for line in writer.stdout:
            track, global_id = map(int, line.split())
            acknowledged[track] = global_id
            if len(acknowledged) == 20:
                break
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL and len(acknowledged) == 20

    with Gallery.open(config) as gallery:
        stored = {t: gallery.get(f"cam-{t % 3}", t) for t in acknowledged}
        assert {t: r.global_id for t, r in stored.items() if r is not None} == acknowledged
        assert len(gallery) >= 20
        assert gallery.next_global_id > max(acknowledged.values())


@pytest.mark.parametrize(
    ("durability", "interval", "flushed"),
    [
        ("flush", 5.0, [1, 2, 3, 4]),  # every acknowledgement fsyncs
        ("wal", 5.0, [0, 0, 1, 1]),  # the first write ≥ 5 s after the last flush
        ("wal", None, [0, 0, 0, 0]),  # only at close
    ],
)
def test_an_embedded_gallery_flushes_as_its_durability_says(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    durability: str,
    interval: float | None,
    flushed: list[int],
) -> None:
    now = [0.0]
    monkeypatch.setattr(gallery_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    config = GalleryConfig(
        path=tmp_path / "g",
        vector_size=DIM,
        num_parts=PARTS,
        durability=durability,
        flush_interval_s=interval,
    )
    flushes = []
    with Gallery.open(config) as gallery:
        backend_flush = gallery._backend.flush
        monkeypatch.setattr(
            gallery._backend, "flush", lambda: flushes.append(now[0]) or backend_flush()
        )
        counts = []
        for track, t in enumerate((1.0, 4.0, 6.0, 9.0)):
            now[0] = t
            gallery.match(tracklet("cam1", track, Person(track).sighting(), t=t))
            counts.append(len(flushes))
    assert counts == flushed
    assert len(flushes) == flushed[-1] + 1  # and once more at close
    with Gallery.open(config) as gallery:  # everything acknowledged is there
        assert len(gallery) == 4


def test_an_indexed_gallery_searched_approximately_answers_as_the_exact_search(
    tmp_path: Path,
) -> None:
    """`stream index` builds an Edge gallery's index between runs; `exact: false` then searches
    it with `hnsw_ef` (a gallery this small is scanned whatever the flag: same answers)."""
    from stream.index import build_gallery_index

    config = GalleryConfig(path=tmp_path / "g", vector_size=DIM, num_parts=PARTS, top_n=10)
    people = [Person(seed) for seed in range(40)]
    with Gallery.open(config) as gallery:
        gallery.add(
            [
                TrackletRecord(
                    camera=f"cam{n % 3}",
                    track=n,
                    t_first=0.0,
                    t_last=1.0,
                    appearance=person.sighting(),
                    global_id=n + 1,
                )
                for n, person in enumerate(people)
            ]
        )
    done = build_gallery_index(tmp_path / "g")
    assert done["points"] == 40 and 0.0 <= done["indexed_share"] <= 1.0
    query = people[7].sighting()
    answers = []
    for exact in (True, False):
        with Gallery.open(config.model_copy(update={"exact": exact, "hnsw_ef": 16})) as gallery:
            answers.append([hit.record.global_id for hit in gallery.search(query, 5)])
    assert answers[0] == answers[1] and answers[0][0] == 8
    with pytest.raises(GalleryError, match="does not exist"):
        build_gallery_index(tmp_path / "missing")
