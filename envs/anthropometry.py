"""Body and prosthesis parameters: segment masses, lengths and inertias from body mass and height.

Human segments follow Winter's anthropometric table (D. A. Winter, *Biomechanics and Motor Control of Human
Movement*, 4th ed., Wiley 2009, Table 4.1): each segment's mass is a fraction of body mass, its length a fraction of
height, its centre of mass a fraction of its length from the proximal joint, and its radius of gyration about the
centre of mass a fraction of its length. The planar model lumps head, arms and trunk into one HAT segment.

The prosthesis stands for a powered knee-ankle device of the Open-Source Leg class (Azocar et al., *Nature Biomedical
Engineering* 4, 2020). Its peak joint torques are those of the MyoSuite OSL model (knee 142 N·m, ankle 168 N·m; see
shared/facts/gait.md); masses follow the throwaway feasibility study that walked on this kind of machine
(pylon with knee unit 2.1 kg, foot with ankle unit 0.9 kg). The joint speed limits are assumptions of the order of
such belt/ball-screw drives, not datasheet values: change them through :class:`ProsthesisParams`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

GRAVITY = 9.81


@dataclass(frozen=True)
class Segment:
    """Winter's fractions for one segment."""

    mass: float  # of body mass
    length: float  # of body height
    com: float  # centre of mass from the proximal joint, of segment length
    gyration: float  # radius of gyration about the centre of mass, of segment length


# Winter (2009), Table 4.1. HAT length is greater trochanter to glenohumeral joint (0.818 H - 0.530 H).
WINTER = {
    "hat": Segment(mass=0.678, length=0.288, com=0.626, gyration=0.496),
    "thigh": Segment(mass=0.100, length=0.245, com=0.433, gyration=0.323),
    "shank": Segment(mass=0.0465, length=0.246, com=0.433, gyration=0.302),
    "foot": Segment(mass=0.0145, length=0.152, com=0.500, gyration=0.475),
}
ANKLE_HEIGHT = 0.039  # of body height (Winter, Fig. 4.1: lateral malleolus)
# Heel and toe contact centres, of foot length behind / in front of the ankle axis (0.05 m and 0.196 m for a
# 0.266 m foot, as in the feasibility study of shared/facts/gait.md).
HEEL_BEHIND_ANKLE = 0.19
TOE_AHEAD_OF_ANKLE = 0.735


@dataclass(frozen=True)
class SegmentProps:
    """Physical properties of one rigid segment in SI units."""

    mass: float  # kg
    length: float  # m
    com: float  # m from the proximal joint along the segment
    inertia: float  # kg·m² about the centre of mass, about the sagittal axis


@dataclass(frozen=True)
class BodyParams:
    """The person: body mass and height (the prosthesis is extra mass on top)."""

    mass: float = 75.0  # kg, without the prosthesis
    height: float = 1.75  # m

    def __post_init__(self) -> None:
        if not 30.0 <= self.mass <= 200.0:
            raise ValueError(f"body mass must be within 30..200 kg, got {self.mass}")
        if not 1.2 <= self.height <= 2.2:
            raise ValueError(f"body height must be within 1.2..2.2 m, got {self.height}")

    def segment(self, name: str) -> SegmentProps:
        s = WINTER[name]
        length = s.length * self.height
        mass = s.mass * self.mass
        return SegmentProps(mass=mass, length=length, com=s.com * length, inertia=mass * (s.gyration * length) ** 2)

    @property
    def ankle_height(self) -> float:
        return ANKLE_HEIGHT * self.height


@dataclass(frozen=True)
class ProsthesisParams:
    """A powered knee-ankle prosthesis of the Open-Source Leg class."""

    pylon_mass: float = 2.1  # kg: knee unit, pylon, load cell
    foot_mass: float = 0.9  # kg: ankle unit and foot shell
    knee_peak_torque: float = 142.0  # N·m
    ankle_peak_torque: float = 168.0  # N·m
    knee_max_speed: float = 10.0  # rad/s (assumed)
    ankle_max_speed: float = 8.0  # rad/s (assumed)
    knee_armature: float = 0.02  # kg·m², reflected rotor inertia (assumed)
    ankle_armature: float = 0.02
    knee_damping: float = 0.5  # N·m·s/rad, drive friction when unpowered
    ankle_damping: float = 0.5
    ankle_range: float = 0.35  # rad, ± mechanical stop
    knee_hyperextension: float = 0.05  # rad the knee may extend past straight

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"prosthesis parameter {f.name} must be finite and >= 0, got {v}")


@dataclass(frozen=True)
class WalkerParams:
    """Everything the MJCF generator needs; change one number and the whole model follows."""

    body: BodyParams = field(default_factory=BodyParams)
    prosthesis: ProsthesisParams = field(default_factory=ProsthesisParams)
    human_peak_torque: float = 250.0  # N·m, every human joint
    friction: float = 1.0
    timestep: float = 0.001  # s
    contact_radius: float = 0.02  # m, heel and toe spheres

    @property
    def total_mass(self) -> float:
        b = self.body
        human = sum(b.segment(n).mass for n in ("hat", "thigh", "thigh", "shank", "foot"))
        return human + self.prosthesis.pylon_mass + self.prosthesis.foot_mass

    @property
    def body_weight(self) -> float:
        """Weight of person plus prosthesis, N."""
        return self.total_mass * GRAVITY

    def to_dict(self) -> dict:
        return asdict(self)
