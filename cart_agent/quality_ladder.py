"""The quality ladder: what each track sends for a given uplink budget.

Each track has its own levels, best first. The ladder's rungs are built by degrading
tracks one level at a time in reverse priority order: the room camera gives way first,
then the exam camera (down to still pictures over the data channel, then off), then
voice, and the stethoscope last. So at every budget a track keeps its level unless every
track below it in priority is already at its floor.

`RungSelector` adds hysteresis: it steps down at once to the best rung that fits with its
video bit rates squeezed (`QualityLadder.squeeze`), but
steps up only one rung at a time, after the budget has exceeded the next rung's cost by
a margin for a while. Each rung change that changes a video size costs a keyframe, so
the selector is what keeps a moving estimate from causing a keyframe storm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Literal

TrackRole = Literal["stethoscope", "voice", "exam", "room"]
PRIORITY: tuple[TrackRole, ...] = ("stethoscope", "voice", "exam", "room")

# IPv4 + UDP + SRTP/RTP with the header extensions aiortc sends, per packet.
PACKET_OVERHEAD_BYTES = 60
AUDIO_PACKETS_PER_S = 25  # 40 ms Opus frames (opus_settings.OpusProfile.frame_ms)
# At and below this rate an audio track sends 60 ms frames: on a 128 kbit/s link the
# stethoscope's and voice's packet overhead alone was 25 kbit/s.
THIN_AUDIO_BPS = 24_000
THIN_AUDIO_FRAME_MS = 60


def audio_frame_ms(bitrate_bps: int) -> int | None:
    """Audio per packet for an audio level's rate (None: the Opus profile's own)."""
    return THIN_AUDIO_FRAME_MS if bitrate_bps <= THIN_AUDIO_BPS else None


VIDEO_PACKET_PAYLOAD = 1200


class VideoMode(Enum):
    VIDEO = "video"
    STILLS = "stills"  # one sharp picture every few seconds over the data channel
    OFF = "off"


@dataclass(frozen=True)
class Level:
    """One setting of one track. Audio levels have no size; `bitrate_bps` is media only."""

    bitrate_bps: int
    width: int = 0
    height: int = 0
    fps: float = 0.0
    mode: VideoMode = VideoMode.VIDEO
    copies: int = 1  # audio: each packet repeats the last `copies - 1` frames (RED)

    @property
    def is_video(self) -> bool:
        return self.width > 0 and self.mode is VideoMode.VIDEO

    @property
    def label(self) -> str:
        if self.mode is VideoMode.STILLS:
            return "stills"
        if self.mode is VideoMode.OFF:
            return "off"
        if self.width:
            return f"{self.width}x{self.height}@{self.fps:g}"
        return f"{self.bitrate_bps // 1000} kbit/s" + ("" if self.copies > 1 else ", no repeat")

    def wire_bps(self, audio: bool) -> int:
        """Bit rate on the wire, packet overhead included."""
        if self.mode is VideoMode.OFF or self.bitrate_bps == 0:
            return 0
        packets: float
        if audio:
            frame_ms = audio_frame_ms(self.bitrate_bps)
            packets = 1000 / frame_ms if frame_ms else AUDIO_PACKETS_PER_S
        else:
            packets = max(self.fps, 1.0) + self.bitrate_bps / 8 / VIDEO_PACKET_PAYLOAD
        return int(self.bitrate_bps + packets * PACKET_OVERHEAD_BYTES * 8)


def _video(width: int, height: int, fps: float, kbps: int) -> Level:
    return Level(kbps * 1000, width, height, fps)


# Both audio tracks are sent twice (RED, `opus_red.py`): 48 kbit/s of "audio"-mode Opus is
# as flat in the heart bands as 64 (tests/rate_control/test_opus_settings.py), and a
# repeat beats extra bits. libopus puts no in-band FEC into speech at 16 kbit/s or less,
# so the voice's repeat is its only protection (5 % loss on `edge`: 5.2 % of the voice
# concealed without it, 0.9-1.1 % with it); 16 kbit/s is wideband speech. The voice's
# last level drops the repeat: on a 128 kbit/s link its 8 kbit/s is the last picture's.
STETHOSCOPE_LEVELS: tuple[Level, ...] = tuple(Level(k * 1000, copies=2) for k in (48, 40, 32, 24))
VOICE_LEVELS: tuple[Level, ...] = (
    *(Level(k * 1000, copies=2) for k in (16, 12, 8)),
    Level(8_000),
)
STILLS = Level(16_000, mode=VideoMode.STILLS)  # 6 KB every 3 s: a 320x180 JPEG
# The last picture before audio only: 3 KB every 3 s, a small, coarse JPEG. On a 128
# kbit/s EDGE link the 16 kbit/s stills rung rarely fitted beside the stethoscope (as RED),
# the voice and the data channels, and no picture came for 20-40 s.
THIN_STILLS = Level(8_000, mode=VideoMode.STILLS)
OFF = Level(0, mode=VideoMode.OFF)
EXAM_LEVELS: tuple[Level, ...] = (
    _video(1280, 720, 25, 1500),
    _video(960, 540, 25, 900),
    _video(640, 360, 25, 600),
    _video(640, 360, 15, 400),
    _video(480, 270, 15, 250),
    _video(320, 180, 15, 150),
    _video(320, 180, 10, 100),
    STILLS,
    THIN_STILLS,
    OFF,
)
ROOM_LEVELS: tuple[Level, ...] = (
    _video(640, 360, 25, 500),
    _video(480, 270, 15, 250),
    _video(320, 180, 10, 100),
    OFF,
)
DEFAULT_LEVELS: Mapping[TrackRole, tuple[Level, ...]] = {
    "stethoscope": STETHOSCOPE_LEVELS,
    "voice": VOICE_LEVELS,
    "exam": EXAM_LEVELS,
    "room": ROOM_LEVELS,
}
AUDIO_ROLES: frozenset[TrackRole] = frozenset({"stethoscope", "voice"})
# The order tracks give way in: the room camera first, but never all the way before the
# exam camera has given up its top sizes (the specialist keeps a view of the room as
# long as an exam picture at 320x180 still fits); and exam stills outlive the voice's
# and stethoscope's last trims: on a 128 kbit/s link a picture every few seconds is worth
# more than 64 → 32 kbit/s of stethoscope (the same in the heart bands,
# tests/rate_control/test_opus_settings.py). Tracks not named then go to their floors,
# lowest priority first.
DEGRADE_PLAN: tuple[tuple[TrackRole, int], ...] = (
    ("room", 1),  # 480x270@15
    ("exam", 2),  # 640x360@25
    ("room", 2),  # 320x180@10
    ("exam", 5),  # 320x180@15
    ("room", -1),
    ("exam", -3),  # stills
    ("voice", -2),  # 8 kbit/s
    ("stethoscope", -1),  # 24 kbit/s (48 on the wire with its repeat)
    ("exam", -2),  # thin stills
    ("voice", -1),  # no repeat
    ("exam", -1),
)


def _wire_bps(role: TrackRole, level: Level) -> int:
    if role not in AUDIO_ROLES:
        return level.wire_bps(False)
    return level.wire_bps(True) + level.bitrate_bps * (level.copies - 1)


@dataclass(frozen=True)
class Rung:
    index: int
    levels: Mapping[TrackRole, Level]

    @property
    def cost_bps(self) -> int:
        return sum(_wire_bps(role, level) for role, level in self.levels.items())

    @property
    def has_video(self) -> bool:
        return any(level.is_video for level in self.levels.values())

    @property
    def has_stills(self) -> bool:
        return any(level.mode is VideoMode.STILLS for level in self.levels.values())

    def squeezed_cost_bps(self, squeeze: float) -> int:
        """The cost with every video track at `squeeze` times its level's rate."""
        return sum(
            Level(int(level.bitrate_bps * squeeze), level.width, level.height, level.fps).wire_bps(
                False
            )
            if level.is_video
            else _wire_bps(role, level)
            for role, level in self.levels.items()
        )

    @property
    def label(self) -> str:
        return ", ".join(f"{role} {self.levels[role].label}" for role in self.levels)


@dataclass(frozen=True)
class Allocation:
    """What each track should send now: the rung's levels plus any spare budget."""

    rung: Rung
    bitrates_bps: Mapping[TrackRole, int]
    budget_bps: float

    def level(self, role: TrackRole) -> Level:
        return self.rung.levels[role]

    @property
    def stills_bps(self) -> int:
        """What the rung gives periodic stills (sent on a data channel, not as RTP)."""
        return sum(
            self.bitrates_bps[role]
            for role, level in self.rung.levels.items()
            if level.mode is VideoMode.STILLS
        )


@dataclass(frozen=True)
class QualityLadder:
    """All rungs for the tracks the cart has, best (index 0) to worst."""

    rungs: tuple[Rung, ...]
    spare_cap: float = 1.3  # a video track may take up to this times its level's rate
    # ...and down to this share of it before the rung is left: a budget a little under a
    # rung's cost lowers video bit rates (no keyframe) instead of stepping down a size, so
    # a 15 % backoff on a delay rise costs sharpness, not the exam picture.
    squeeze: float = 0.6
    # The last rung with video may go lower before video gives way to stills: on a
    # 300 kbit/s link the audio and data channels leave about 110 kbit/s, just its full
    # cost, and at 0.6 the ladder flipped between video and stills every few seconds
    # (`step`).
    last_video_squeeze: float = 0.45

    # Both are read for every rung on every selection (`squeeze_of`); the rungs never
    # change, so each is found once.
    @cached_property
    def last_video(self) -> Rung | None:
        """The worst rung that still sends video."""
        videos = [r for r in self.rungs if r.has_video]
        return videos[-1] if videos else None

    @cached_property
    def last_stills(self) -> Rung | None:
        """The worst rung that still sends stills."""
        stills = [r for r in self.rungs if r.has_stills]
        return stills[-1] if stills else None

    def squeeze_of(self, rung: Rung) -> float:
        last = self.last_video
        return (
            self.last_video_squeeze
            if last is not None and rung.index == last.index
            else (self.squeeze)
        )

    @classmethod
    def build(
        cls,
        roles: Sequence[TrackRole] = PRIORITY,
        levels: Mapping[TrackRole, Sequence[Level]] = DEFAULT_LEVELS,
        plan: Sequence[tuple[TrackRole, int]] = DEGRADE_PLAN,
    ) -> QualityLadder:
        """Rungs from degrading tracks one level at a time along `plan`: each step takes
        one role down to a level index (negative counts from its floor)."""
        ordered = [role for role in PRIORITY if role in roles]
        position = dict.fromkeys(ordered, 0)
        rungs = [Rung(0, {role: levels[role][0] for role in ordered})]
        for role, target in (*plan, *((r, -1) for r in reversed(ordered))):
            if role not in position:
                continue
            stop = target % len(levels[role])
            while position[role] < stop:
                position[role] += 1
                current = {r: levels[r][position[r]] for r in ordered}
                rungs.append(Rung(len(rungs), current))
        return cls(tuple(rungs))

    @property
    def floor(self) -> Rung:
        return self.rungs[-1]

    def best_fit(self, budget_bps: float) -> Rung:
        """The best rung whose cost fits the budget (the floor if none does)."""
        for rung in self.rungs:
            if rung.cost_bps <= budget_bps:
                return rung
        return self.floor

    def best_squeezed_fit(self, budget_bps: float) -> Rung:
        """The best rung that fits the budget with its video squeezed (see `squeeze`)."""
        for rung in self.rungs:
            if rung.squeezed_cost_bps(self.squeeze_of(rung)) <= budget_bps:
                return rung
        return self.floor

    def allocate(self, rung: Rung, budget_bps: float) -> Allocation:
        """Rung rates, with spare budget going to video tracks in priority order."""
        rates = {role: level.bitrate_bps for role, level in rung.levels.items()}
        deficit = max(0.0, rung.cost_bps - budget_bps)
        for role in reversed(PRIORITY):  # squeeze the lowest priority first
            level = rung.levels.get(role)
            if level is None or not level.is_video or deficit <= 0:
                continue
            cut = min(deficit, level.bitrate_bps * (1.0 - self.squeeze_of(rung)))
            rates[role] -= int(cut)
            deficit -= cut
        spare = max(0.0, budget_bps - rung.cost_bps)
        for role in PRIORITY:
            level = rung.levels.get(role)
            if level is None or not level.is_video or spare <= 0:
                continue
            extra = min(spare, level.bitrate_bps * (self.spare_cap - 1.0))
            rates[role] += int(extra)
            spare -= extra
        return Allocation(rung, rates, budget_bps)


@dataclass
class _Boundary:
    """Hysteresis where pictures give way: video to stills, stills to audio only."""

    keeps: Callable[[Rung], bool]  # the rung still sends this kind of picture
    since: float | None = None  # when the last rung that keeps it stopped fitting

    def hold(
        self,
        current: Rung | None,
        fit: Rung,
        last: Rung | None,
        near: bool,
        now: float,
        hold_s: float,
    ) -> tuple[Rung, bool]:
        """The rung to go to instead of `fit`, and whether it is `current` held."""
        if current is None or not self.keeps(current) or self.keeps(fit) or not near or not last:
            self.since = None
            return fit, False
        if current.index < last.index:
            return last, False  # first down to the last rung that keeps it, at once
        if self.since is None:
            self.since = now
        if now - self.since < hold_s:
            return current, True
        return fit, False


@dataclass
class RungSelector:
    """Chooses a rung from a moving budget, with hysteresis against oscillation."""

    ladder: QualityLadder
    # The next rung up must fit at full cost (it is left only below its squeezed cost,
    # `QualityLadder.squeeze`: that band is the hysteresis) this many times over...
    up_margin: float = 1.0
    up_hold_s: float = 2.0  # ...for this long,
    failed_up_window_s: float = 10.0  # and longer (doubled, up to `max_hold_s`) for a rung
    max_hold_s: float = 32.0  # left again within this long of reaching it
    # Video gives way to stills only after the last video rung, squeezed, has not fitted
    # for this long: a delay-based cut takes the estimate 15 % under capacity and it is
    # back within a second or two (on `step` video and stills alternated every few s).
    stills_after_s: float = 2.0
    near_video_share: float = 0.8  # ...unless the budget is below this share of its cost
    # Likewise stills give way to audio only, but later and however low the budget: on
    # `edge` each delay-based cut put the budget under the thinnest stills for 3-6 s, the
    # exam picture then stayed off until the climb back (gaps of 9-16 s against a goal
    # of 5), and the stills are a few kbit/s under SCTP's own congestion control. A cut
    # of 15 % from a full link, less the data channels' 30-50 kbit/s, reads the same
    # floor budget as a collapse (the estimator's 60 kbit/s): taken as a collapse, it
    # took the exam camera off for 4.5-8 s in 1 run of 5.
    audio_only_after_s: float = 5.0
    unproven_step: float = 1.3  # see `select`
    proven_s: float = 1.0  # see `proven`
    current: Rung | None = None
    video_back_at: float | None = None  # when video last came back after stills
    _fits_up_since: float | None = field(default=None, repr=False)
    _video_boundary: _Boundary = field(
        default_factory=lambda: _Boundary(lambda rung: rung.has_video), repr=False
    )
    _stills_boundary: _Boundary = field(
        default_factory=lambda: _Boundary(lambda rung: rung.has_video or rung.has_stills),
        repr=False,
    )
    _reached_at: float = field(default=-1e9, repr=False)
    _climbed: bool = field(default=False, repr=False)  # the current rung was a step up
    _holds: dict[int, float] = field(default_factory=dict, repr=False)
    _proven_bps: float = field(default=0.0, repr=False)
    _proven_at: float = field(default=-1e9, repr=False)
    changes: int = 0

    def hold_s(self, rung: Rung) -> float:
        """How long a better rung must fit before the selector moves to it."""
        return self._holds.get(rung.index, self.up_hold_s)

    def select(self, budget_bps: float, now: float) -> Rung:
        fit = self.ladder.best_squeezed_fit(budget_bps)
        current = self.current
        last_video = self.ladder.last_video
        near_video = last_video is not None and budget_bps >= self.near_video_share * (
            last_video.squeezed_cost_bps(self.ladder.squeeze_of(last_video))
        )
        last_stills = self.ladder.last_stills
        for boundary, last, near, hold_s in (
            (self._video_boundary, last_video, near_video, self.stills_after_s),
            (self._stills_boundary, last_stills, True, self.audio_only_after_s),
        ):
            fit, held = boundary.hold(current, fit, last, near, now, hold_s)
            if held:
                return fit
        if (
            current is not None
            and self._climbed
            and now - self._reached_at >= self.failed_up_window_s
        ):
            self._holds.pop(current.index, None)  # the step up held: forgiven
        if current is None or fit.index > current.index:
            if (
                current is not None
                and self._climbed
                and (last_stills is None or current.index < last_stills.index)
                and now - self._reached_at < self.failed_up_window_s
            ):
                # The step up did not hold (on a 384 kbit/s link, turning the room camera
                # on cost two keyframes and 49 % loss; on `edge` richer audio beside the
                # stills cost 13 % loss): try that rung less eagerly. Not the thinnest
                # stills: backing off from them kept `edge` on audio only for 17 s. Nor
                # a rung passed on the way down: on `step` the drop went 0 → 5 → 8 in
                # half a second, and doubled holds of 5 and 8 slowed the climb after the rise.
                self._holds[current.index] = min(2 * self.hold_s(current), self.max_hold_s)
            self._move(fit, now)
            self._fits_up_since = None
            return fit
        if current.index == 0:
            return current
        up = self.ladder.best_fit(budget_bps / self.up_margin)
        if not current.has_video:
            # Without video the cart sends little, and a budget seen then is mostly
            # headroom nobody has tried (the estimator cannot see congestion it does not
            # cause): climb at most `unproven_step` times the current cost (one rung at
            # least), and from stills to the last video rung first. Jumping further
            # overshot and fell back within a second on `step` and `edge`.
            reach = next(
                (
                    r
                    for r in self.ladder.rungs
                    if r.cost_bps <= self.unproven_step * current.cost_bps
                ),
                current,
            )
            floor_index = min(reach.index, current.index - 1)
            if last_video is not None:
                floor_index = max(floor_index, last_video.index)
            up = self.ladder.rungs[max(up.index, floor_index)]
        while (
            up.index < current.index
            and now - (self._fits_up_since or now) < self.hold_s(up)
            and not self._proven_fits(up, now)
        ):
            up = self.ladder.rungs[up.index + 1]  # a nearer rung whose hold has passed
        if self.ladder.best_fit(budget_bps / self.up_margin).index < current.index:
            if self._fits_up_since is None:
                self._fits_up_since = now
            if up.index < current.index:
                # Straight to the best rung that has fitted with margin for its hold time
                # (rung by rung, a 300 → 1000 kbit/s rise would take tens of seconds).
                self._move(up, now)
                self._fits_up_since = None
        else:
            self._fits_up_since = None
        assert self.current is not None
        return self.current

    @property
    def changed_at(self) -> float:
        """When the current rung was reached."""
        return self._reached_at

    def proven(self, budget_bps: float, now: float) -> None:
        """A probe just showed the link carrying this budget (`prober.py`): for the next
        `proven_s`, a rung that fits it needs no hold. The hold is there because an
        estimate moves; a probe's reading was measured, and holding 2 s a step kept `step`
        under 80 % of its risen link for 8-9 s even after the probe had found it."""
        self._proven_bps, self._proven_at = budget_bps, now

    def _proven_fits(self, rung: Rung, now: float) -> bool:
        return now - self._proven_at <= self.proven_s and rung.cost_bps <= self._proven_bps

    def resume(self, rung: Rung, now: float) -> None:
        """Back to the rung of before an outage at once: its rate was tried, and a climb
        from audio only, a rung at a time, had kept the exam camera off for 12 s after a
        10 s outage on `outage`."""
        self._fits_up_since = self._video_boundary.since = self._stills_boundary.since = None
        self._move(rung, now)

    def _move(self, rung: Rung, now: float) -> None:
        if self.current is None or rung.index != self.current.index:
            if self.current is not None and rung.has_video and not self.current.has_video:
                self.video_back_at = now
            self.changes += self.current is not None
            self._climbed = self.current is not None and rung.index < self.current.index
            self.current = rung
            self._reached_at = now
