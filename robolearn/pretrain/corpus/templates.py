"""The Something-Something-v2 templates the corpus performs, each a planner: (rng, Context) -> Plan.

Planners lay out the objects on the table, choose the hand's shape and keyframes, and give the check that
decides, from the simulator's state at the last frame, whether the clip shows what its caption says.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robolearn.envs.tasks.drawer import CLOSED, HANDLE_OUT, HANDLE_Z, TRAVEL
from robolearn.pretrain.corpus.hand import FINGER_T, SKIN, HandShape
from robolearn.pretrain.corpus.objects import MOVABLE, SUPPORTS, Obj, sample_object
from robolearn.pretrain.corpus.plans import REGION, Context, Drawer, Key, Plan, Reject, Track, in_region, unit

SUBJECT = "obj0"
OTHER = "obj1"
PUSH_MIN = 0.07  # [m] a push / move must carry the object at least this far the captioned way
PIXEL_MIN = 0.05  # ... and move it at least this share of the frame width in the image


def _hand(rng: np.random.Generator, gap: float, finger_len: float) -> HandShape:
    skin = np.asarray(SKIN[int(rng.integers(len(SKIN)))]) * rng.uniform(0.9, 1.1)
    return HandShape(float(gap), float(finger_len), (*(float(v) for v in np.clip(skin, 0, 1)), 1.0))


def _place(obj: Obj, xy, yaw: float | None = None, rng: np.random.Generator | None = None) -> Obj:
    from dataclasses import replace

    yaw = float(rng.uniform(-np.pi, np.pi)) if yaw is None and rng is not None else float(yaw or 0.0)
    return replace(obj, xy=(float(xy[0]), float(xy[1])), yaw=yaw)


def _random_xy(rng: np.random.Generator, margin: float) -> np.ndarray:
    (x0, x1), (y0, y1) = REGION
    return np.array([rng.uniform(x0 + margin, x1 - margin), rng.uniform(y0 + margin, y1 - margin)])


def _start_key(ctx: Context, first: np.ndarray, yaw: float) -> Key:
    """The hand enters from above, on the camera's side."""
    p = np.asarray(first, float) - np.r_[ctx.forward[:2] * 0.12, -0.16]
    return Key(0.0, tuple(p), yaw)


def _k(t: float, xy, z: float, yaw: float, grasp: str | None = None) -> Key:
    return Key(t, (float(xy[0]), float(xy[1]), float(z)), float(yaw), grasp)


def _push_keys(obj: Obj, d: np.ndarray, dist: float, ctx: Context, hand: HandShape, t_end: float = 0.72) -> list[Key]:
    """Hand behind the object (front finger 2 cm off it), down to the table, along d by dist, up."""
    p0 = np.asarray(obj.xy)
    yaw = float(np.arctan2(d[1], d[0]))
    behind = p0 - d[:2] * (obj.extent(d) + hand.gap / 2 + 2 * FINGER_T + 0.02)
    z_low, z_high = ctx.table_z + 0.006, ctx.table_z + 2 * obj.half_height + 0.05
    end = behind + d[:2] * dist
    first = _k(0.18, behind, z_high, yaw)
    return [
        _start_key(ctx, np.array(first.pos), yaw),
        first,
        _k(0.3, behind, z_low, yaw),
        _k(t_end, end, z_low, yaw),
        _k(t_end + 0.12, end, z_low + 0.12, yaw),
        _k(1.0, end, z_low + 0.13, yaw),
    ]


def _pixel_shift(track: Track, body: str) -> float:
    if track.project is None or not track.width:
        return 0.0
    return float((track.project(track.end[body])[0] - track.project(track.start[body])[0]) / track.width)


def _pushable(rng: np.random.Generator) -> Obj:
    kind = str(rng.choice([k for k in MOVABLE if k != "bottle"]))
    return sample_object(rng, SUBJECT, MOVABLE, kind)


def push_sideways(sign: float) -> Callable[[np.random.Generator, Context], Plan]:
    """Pushing from left to right (sign +1, along the camera's right) or right to left (-1)."""

    def plan(rng: np.random.Generator, ctx: Context) -> Plan:
        d = np.r_[ctx.right[:2] * sign, 0.0]
        dist = float(rng.uniform(0.15, 0.2))
        centre = _random_xy(rng, 0.06)
        p0 = centre - d[:2] * dist / 2
        if not (in_region(p0) and in_region(p0 + d[:2] * dist)):
            raise Reject("push path leaves the table region")
        obj = _place(_pushable(rng), p0, rng=rng)
        hand = _hand(rng, rng.uniform(0.03, 0.05), rng.uniform(0.06, 0.08))

        def check(tr: Track) -> dict:
            disp = tr.end[SUBJECT] - tr.start[SUBJECT]
            along, px = float(disp[:2] @ d[:2]), _pixel_shift(tr, SUBJECT) * sign
            ok = along > PUSH_MIN and px > PIXEL_MIN and SUBJECT in tr.touched
            return {"ok": ok, "moved_m": along, "image_shift": px, "touched": SUBJECT in tr.touched}

        return Plan([obj], hand, _push_keys(obj, d, dist, ctx, hand), [obj.phrase(rng.random() < 0.3)], check)

    return plan


def _grasp_hand(rng: np.random.Generator, obj: Obj) -> HandShape:
    return _hand(rng, obj.narrow_width() + rng.uniform(0.012, 0.02), min(2 * obj.half_height + 0.012, 0.1))


def _grasp_yaw(obj: Obj) -> float:
    return obj.grasp_axis() + (np.pi / 2 if obj.kind == "mug" else 0.0)


def _grasp_z(obj: Obj, hand: HandShape, table_z: float) -> float:
    """Hand height (fingertips) at which the palm just clears the object's top."""
    return max(table_z + 0.004, table_z + 2 * obj.half_height + 0.006 - hand.finger_len)


def _liftable(rng: np.random.Generator, tall: bool = True) -> Obj:
    kind = str(rng.choice([k for k in MOVABLE if k not in ("ball", "book") and (tall or k != "bottle")]))
    return sample_object(rng, SUBJECT, MOVABLE, kind)


def picking_up(rng: np.random.Generator, ctx: Context) -> Plan:
    obj = _place(_liftable(rng), _random_xy(rng, 0.06), rng=rng)
    hand = _grasp_hand(rng, obj)
    yaw, zg = _grasp_yaw(obj), _grasp_z(obj, hand, ctx.table_z)
    lift = float(rng.uniform(0.12, 0.17))
    top = ctx.table_z + 2 * obj.half_height + 0.03
    first = _k(0.2, obj.xy, top, yaw)
    drift = np.asarray(obj.xy) + rng.uniform(-0.03, 0.03, 2)
    keys = [
        _start_key(ctx, np.array(first.pos), yaw),
        first,
        _k(0.36, obj.xy, zg, yaw, SUBJECT),
        _k(0.44, obj.xy, zg, yaw),
        _k(0.75, drift, zg + lift, yaw),
        _k(1.0, drift, zg + lift + 0.01, yaw),
    ]

    def check(tr: Track) -> dict:
        rise = float(tr.end[SUBJECT][2] - tr.start[SUBJECT][2])
        return {"ok": rise > 0.08 and SUBJECT in tr.held, "lifted_m": rise, "held": SUBJECT in tr.held}

    return Plan([obj], hand, keys, [obj.phrase(rng.random() < 0.3)], check)


def _onto(drop: bool) -> Callable[[np.random.Generator, Context], Plan]:
    """Putting (released just above) or dropping (released 7-12 cm above) something onto a support."""

    def plan(rng: np.random.Generator, ctx: Context) -> Plan:
        obj = _liftable(rng, tall=False)
        sup = sample_object(rng, OTHER, SUPPORTS)
        a, b = _random_xy(rng, 0.06), _random_xy(rng, 0.1)
        if np.linalg.norm(a - b) < 0.2:
            raise Reject("objects too close")
        obj, sup = _place(obj, a, rng=rng), _place(sup, b, rng=rng)
        hand = _grasp_hand(rng, obj)
        yaw, zg = _grasp_yaw(obj), _grasp_z(obj, hand, ctx.table_z)
        below = zg - ctx.table_z  # fingertips above the object's bottom
        sup_top = ctx.table_z + 2 * sup.half_height
        release = float(rng.uniform(0.07, 0.12)) if drop else 0.004
        z_rel = sup_top + release + below
        z_carry = max(z_rel, sup_top + 0.004 + below) + 0.05
        target = b + rng.uniform(-0.015, 0.015, 2)
        first = _k(0.15, a, ctx.table_z + 2 * obj.half_height + 0.03, yaw)
        keys = [
            _start_key(ctx, np.array(first.pos), yaw),
            first,
            _k(0.27, a, zg, yaw, SUBJECT),
            _k(0.33, a, zg, yaw),
            _k(0.45, a, z_carry, yaw),
            _k(0.64, target, z_carry, yaw),
        ]
        if drop:
            keys += [_k(0.7, target, z_rel, yaw, "-"), _k(0.85, target, z_rel + 0.06, yaw)]
        else:
            keys += [_k(0.76, target, z_rel, yaw, "-"), _k(0.88, target, z_rel + 0.1, yaw)]
        keys.append(_k(1.0, target, keys[-1].pos[2] + 0.01, yaw))

        def check(tr: Track) -> dict:
            pa, pb = tr.end[SUBJECT], tr.end[OTHER]
            bottom = float(pa[2] - obj.half_height)
            top = float(pb[2] + sup.half_height)
            yaw_b = float(2 * np.arctan2(tr.end_quat[OTHER][3], tr.end_quat[OTHER][0]))
            on = sup.contains_xy(pa, pb, yaw_b) and abs(bottom - top) < 0.015
            still = tr.end_speed[SUBJECT] < 0.1 and SUBJECT not in tr.held
            return {
                "ok": bool(on and still),
                "on_support": bool(on),
                "height_above_support_m": bottom - top,
                "released": SUBJECT not in tr.held,
                "release_height_m": release,
            }

        return Plan([obj, sup], hand, keys, [obj.phrase(rng.random() < 0.3), sup.phrase(rng.random() < 0.5)], check)

    return plan


def _moving(closer: bool) -> Callable[[np.random.Generator, Context], Plan]:
    """Moving something closer to / away from something: a push along the line between them."""

    def plan(rng: np.random.Generator, ctx: Context) -> Plan:
        obj = _pushable(rng)
        other = sample_object(rng, OTHER, {k: v for k, v in MOVABLE.items() if k not in ("ball",)})
        b = _random_xy(rng, 0.06)
        ang = rng.uniform(-np.pi, np.pi)
        dist0 = float(rng.uniform(0.22, 0.28) if closer else rng.uniform(0.18, 0.24))
        a = b + dist0 * np.array([np.cos(ang), np.sin(ang)])
        u = unit(b - a) if closer else unit(a - b)
        dist = float(rng.uniform(0.1, 0.13))
        if not (in_region(a, 0.04) and in_region(a + u * dist, 0.04)):
            raise Reject("move path leaves the table region")
        obj, other = _place(obj, a, rng=rng), _place(other, b, rng=rng)
        hand = _hand(rng, rng.uniform(0.03, 0.05), rng.uniform(0.06, 0.08))
        d = np.r_[u, 0.0]

        def check(tr: Track) -> dict:
            before = float(np.linalg.norm(tr.start[SUBJECT][:2] - tr.start[OTHER][:2]))
            after = float(np.linalg.norm(tr.end[SUBJECT][:2] - tr.end[OTHER][:2]))
            change = before - after if closer else after - before
            other_moved = float(np.linalg.norm(tr.end[OTHER][:2] - tr.start[OTHER][:2]))
            ok = change > 0.06 and other_moved < 0.03 and SUBJECT in tr.touched
            return {"ok": ok, "distance_before_m": before, "distance_after_m": after, "other_moved_m": other_moved}

        return Plan(
            [obj, other],
            hand,
            _push_keys(obj, d, dist, ctx, hand),
            [obj.phrase(rng.random() < 0.3), other.phrase(rng.random() < 0.5)],
            check,
        )

    return plan


def poking(rng: np.random.Generator, ctx: Context) -> Plan:
    obj = sample_object(rng, SUBJECT, MOVABLE, str(rng.choice(["cube", "box", "book", "can", "mug"])))
    obj = _place(obj, _random_xy(rng, 0.08), rng=rng)
    hand = _hand(rng, rng.uniform(0.03, 0.045), rng.uniform(0.06, 0.08))
    ang = float(np.arctan2(ctx.forward[1], ctx.forward[0]) + rng.uniform(-1.2, 1.2))
    d = np.array([np.cos(ang), np.sin(ang), 0.0])
    p0 = np.asarray(obj.xy)
    reach = obj.extent(d) + hand.gap / 2 + 2 * FINGER_T
    near, touch = p0 - d[:2] * (reach + 0.04), p0 - d[:2] * (reach - 0.005)
    z = ctx.table_z + min(obj.half_height, 0.02)
    first = _k(0.22, near, z + 0.12, ang)
    keys = [
        _start_key(ctx, np.array(first.pos), ang),
        first,
        _k(0.38, near, z, ang),
        _k(0.5, touch, z, ang),
        _k(0.6, near, z, ang),
        _k(0.8, near, z + 0.12, ang),
        _k(1.0, near, z + 0.13, ang),
    ]

    def check(tr: Track) -> dict:
        moved = float(np.linalg.norm(tr.end[SUBJECT][:2] - tr.start[SUBJECT][:2]))
        return {"ok": SUBJECT in tr.touched and moved < 0.025, "touched": SUBJECT in tr.touched, "moved_m": moved}

    return Plan([obj], hand, keys, [obj.phrase(rng.random() < 0.3)], check)


def _drawer(opening: bool) -> Callable[[np.random.Generator, Context], Plan]:
    """Opening / closing the drawer: the fingers straddle its handle bar and pull / push it along x."""

    def plan(rng: np.random.Generator, ctx: Context) -> Plan:
        pos = (float(rng.uniform(0.48, 0.56)), float(rng.uniform(-0.15, 0.15)))
        q0 = float(rng.uniform(0.0, 0.015)) if opening else float(rng.uniform(0.1, TRAVEL - 0.01))
        stroke = float(rng.uniform(0.11, TRAVEL - 0.02)) if opening else -(q0 + 0.012)
        hand = _hand(rng, 0.03, 0.05)
        bar = np.array([pos[0] - q0 - HANDLE_OUT, pos[1] + rng.uniform(-0.01, 0.01)])
        z = ctx.table_z + HANDLE_Z - 0.028
        end = bar - np.array([stroke, 0.0])
        first = _k(0.2, bar, z + 0.09, 0.0)
        keys = [
            _start_key(ctx, np.array(first.pos), 0.0),
            first,
            _k(0.36, bar, z, 0.0),
            _k(0.74, end, z, 0.0),
            _k(0.86, end, z + 0.1, 0.0),
            _k(1.0, end, z + 0.11, 0.0),
        ]

        def check(tr: Track) -> dict:
            change = tr.drawer_end - tr.drawer_start
            ok = change > 0.08 if opening else (change < -0.07 and tr.drawer_end <= CLOSED + 0.01)
            return {"ok": bool(ok), "drawer_before_m": tr.drawer_start, "drawer_after_m": tr.drawer_end}

        name = str(rng.choice(["the drawer", "a drawer", "the drawer", "the small drawer"]))
        p = Plan([], hand, keys, [name], check, drawer=Drawer(pos, q0))
        p.focus = np.array([pos[0] - 0.06, pos[1], ctx.table_z + 0.06])
        return p

    return plan


# template -> planner; the order is the order of the corpus's balanced template cycle.
TEMPLATES: dict[str, Callable[[np.random.Generator, Context], Plan]] = {
    "Pushing [something] from left to right": push_sideways(1.0),
    "Pushing [something] from right to left": push_sideways(-1.0),
    "Picking [something] up": picking_up,
    "Putting [something] onto [something]": _onto(drop=False),
    "Dropping [something] onto [something]": _onto(drop=True),
    "Moving [something] closer to [something]": _moving(closer=True),
    "Moving [something] away from [something]": _moving(closer=False),
    "Poking [something] so lightly that it doesn't or almost doesn't move": poking,
    "Opening [something]": _drawer(opening=True),
    "Closing [something]": _drawer(opening=False),
}
USES_DRAWER = {"Opening [something]", "Closing [something]"}


def fill(template: str, placeholders: list[str]) -> str:
    """The caption: each [something] replaced by the next placeholder."""
    out = template
    for p in placeholders:
        out = out.replace("[something]", p, 1)
    if "[something]" in out:
        raise ValueError(f"template {template!r} has more [something] slots than placeholders {placeholders}")
    return out
